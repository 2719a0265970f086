"""The consent-matcher command line: command groups, each command a thin shell over a service."""

from __future__ import annotations

import click

from matcher.cli import audit, calibrate, consent, credentials, database, people, report, review, scan, serve
from matcher.cli.common import App
from matcher.clock import SYSTEM_CLOCK
from matcher.policy import PolicyError, load_policy


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="consent-matcher")
@click.option(
    "--db",
    "db_path",
    envvar="CONSENT_MATCHER_DB",
    default="consent.db",
    show_default=True,
    help="The database (env CONSENT_MATCHER_DB): a file (SQLite, created readable by its owner only) or "
         "postgresql://USER@HOST/DB (a PostgreSQL server shared by many scanners and web workers).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False),
    help="The policy rules file (default: data/policy.toml shipped with consent-matcher).",
)
@click.pass_context
def main(ctx: click.Context, db_path: str, policy_path: str | None) -> None:
    """Honour people's wish not to have their photos shared without consent.

    Enroll people who opt out, scan folders of media for their faces, and
    decide allow / review / remove by the shared policy rules.
    """
    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise click.ClickException(f"refusing the policy rules: {exc}") from None
    # A caller embedding the command line (a test, a replay) may hand in its own clock as ``obj``.
    ctx.obj = App(db_path, policy, ctx.obj or SYSTEM_CLOCK)


def _add_commands(group: click.Group, modules) -> None:
    for module in modules:
        for command in module.COMMANDS:
            group.add_command(command)


_add_commands(main, (people, consent, scan, report, calibrate, review, credentials, serve, audit, database))
