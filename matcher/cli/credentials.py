"""Tokens for the web app: `reviewer` and `apikey`, the same add / list / remove over one kind each."""

from __future__ import annotations

from dataclasses import asdict

import click

from matcher.audit import cli_actor
from matcher.cli.common import App, emit, json_option, pass_app
from matcher.services import ActionError, access


def credential_group(kind: str, who: str, use: str) -> click.Group:
    @click.group(kind, help=f"Tokens for {who} of the web app ({use}).")
    def group() -> None:
        pass

    @group.command("add")
    @click.argument("name")
    @json_option
    @pass_app
    def add(app: App, name: str, as_json: bool, scope: str | None = None) -> None:
        """Create NAME's token (replacing an earlier one) and print it, once: only its hash is kept."""
        try:
            token = access.add_credential(app.session, kind, name, cli_actor(), scope)
        except ActionError as exc:
            raise click.BadParameter(str(exc), param_hint="NAME") from None
        name = name.strip()
        emit({"name": name, "token": token, "scope": scope}, as_json,
             f"{kind} {name}: {token}" + (f" (scope: {scope})" if scope else "")
             + f"\n(shown once; give it to {name} privately, it cannot be shown again)")

    if kind == "apikey":
        add = click.option("--scope", type=click.Choice(access.API_SCOPES),
                           help="names: the key's answers give enrolled people's names (without it, opaque "
                                "ids: a key holder cannot learn who opted out).")(add)

    @group.command("list")
    @json_option
    @pass_app
    def list_(app: App, as_json: bool) -> None:
        """The names holding a token, and when it was made."""
        rows = access.credentials(app.session, kind)
        emit([asdict(r) for r in rows], as_json,
             "\n".join(f"{r.name}\tsince {r.created_at}" + (f"\tscope {r.scope}" if r.scope else "")
                       for r in rows) or f"no {kind} tokens")

    @group.command("remove")
    @click.argument("name")
    @json_option
    @pass_app
    def remove(app: App, name: str, as_json: bool) -> None:
        """Withdraw NAME's token; their signed-in sessions end."""
        try:
            access.remove_credential(app.session, kind, name, cli_actor())
        except ActionError as exc:
            raise click.ClickException(str(exc)) from None
        emit({"name": name, "removed": True}, as_json, f"{kind} {name} removed")

    return group


COMMANDS = [
    credential_group("reviewer", "reviewers", "the review queue at /review"),
    credential_group("apikey", "platforms", "POST /api/check with the X-API-Key header"),
]
