"""Consents of enrolled people: grant, revoke, list."""

from __future__ import annotations

import click

from matcher.audit import cli_actor
from matcher.cli.common import App, emit, json_option, pass_app
from matcher.media import hash_stream
from matcher.services import ActionError, MissingScope, consents


@click.group()
def consent() -> None:
    """Record, revoke and list consents of enrolled people."""


def _file_sha256(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return hash_stream(handle)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read the file: {exc.strerror or exc}") from None


@consent.command("grant")
@click.argument("name")
@click.option("--media", "media", type=click.Path(dir_okay=False), help="One media item (by content: copies are covered too).")
@click.option("--uploader", help="All media posted by this uploader.")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Up to and including this date (YYYY-MM-DD).")
@json_option
@pass_app
def consent_grant(app: App, name: str, media, uploader, until, as_json: bool) -> None:
    """Record that NAME consents to a media item, an uploader, until a date, or a combination."""
    person = app.person(name)
    sha256 = _file_sha256(media) if media else None
    until_text = until.date().isoformat() if until else None
    try:
        consent_id = consents.grant(app.session, person, cli_actor(), sha256, uploader, until_text)
    except MissingScope:
        raise click.UsageError("say what the consent covers: --media, --uploader and/or --until") from None
    scope = ", ".join(
        part for part in (f"media {sha256[:12]}…" if sha256 else "", f"uploader {uploader}" if uploader else "",
                          f"until {until_text}" if until_text else "") if part
    )
    emit({"id": consent_id, "person": person.name, "media_sha256": sha256, "uploader": uploader, "until": until_text},
         as_json, f"consent {consent_id} recorded for {person.name}: {scope}")


@consent.command("revoke")
@click.argument("consent_id", type=int)
@json_option
@pass_app
def consent_revoke(app: App, consent_id: int, as_json: bool) -> None:
    """End consent CONSENT_ID (see: consent list NAME)."""
    try:
        consents.revoke(app.session, consent_id, cli_actor())
    except ActionError as exc:
        raise click.ClickException(str(exc)) from None
    emit({"id": consent_id, "revoked": True}, as_json, f"consent {consent_id} revoked")


@consent.command("list")
@click.argument("name")
@json_option
@pass_app
def consent_list(app: App, name: str, as_json: bool) -> None:
    """Show NAME's consents with their status (active, expired, revoked)."""
    person = app.person(name)
    rows = consents.of_person(app.session, person.id)
    lines = [
        f"{r['id']}\t{r['status']}\tmedia={r['media_sha256'] or '*'}\tuploader={r['uploader'] or '*'}\t"
        f"until={r['until'] or '-'}\tgranted {r['granted_at']}"
        for r in rows
    ]
    emit(rows, as_json, "\n".join(lines) or f"{person.name} has no consent on record")


COMMANDS = [consent]
