"""Moving the records to another database."""

from __future__ import annotations

import click

from matcher.cli.common import emit, json_option
from matcher.services import ActionError
from matcher.services.moving import move
from matcher.store import StoreError


@click.command("migrate")
@click.option("--from", "source", required=True, metavar="DATABASE",
              help="The database to move: sqlite:PATH (or a path), or postgresql://USER@HOST/DB.")
@click.option("--to", "target", required=True, metavar="DATABASE",
              help="An empty database to move it to, e.g. postgresql://USER@HOST/DB (tables are created).")
@json_option
def migrate(source: str, target: str, as_json: bool) -> None:
    """Move every record (people, consents, scans, decisions, reviews, credentials, the audit trail)
    to another database, and check there that the audit chain verifies to the same head.

    The source is left as it is. Stop scans and servers that write to it first; afterwards
    point --db (or CONSENT_MATCHER_DB) at the new database.
    """
    try:
        moved = move(source, target)
    except (ActionError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    total = sum(moved["rows"].values())
    emit(moved, as_json, f"moved {total} rows from {moved['from']} to {moved['to']}; audit trail intact there: "
                         f"{moved['audit']['entries']} entries, head {moved['audit']['head']}")


COMMANDS = [migrate]
