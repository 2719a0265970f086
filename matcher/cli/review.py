"""The review queue from the command line: list pending items, decide one."""

from __future__ import annotations

from dataclasses import asdict

import click

from matcher.cli.common import App, emit, json_option, pass_app
from matcher.report import printable
from matcher.services import ActionError, reviews


@click.group()
def review() -> None:
    """The review queue: items (a person seen in a file) waiting for a person's decision."""


@review.command("list")
@click.option("--person", "name", help="Only items of this enrolled person.")
@json_option
@pass_app
def review_list(app: App, name: str | None, as_json: bool) -> None:
    """Show pending items with their face box, distance, rule and reason."""
    person = app.person(name) if name else None
    items = reviews.pending(app.session, person.id if person else None)
    lines = []
    for item in items:
        seen = f" at {', '.join(f'{t:g}s' for t in item.frame_times)}" if item.frame_times else ""
        lines.append(f"{item.id}  {printable(item.path)}\n    {printable(item.person)} d={item.distance:.3f} "
                     f"box={item.box}{seen} [{item.rule}]: {printable(item.reason)}\n    version {item.version}")
    emit([asdict(item) for item in items], as_json, "\n".join(lines) or "nothing waiting for review")


@review.command("decide")
@click.argument("item")
@click.option("--remove", "verdict", flag_value="remove", help="The media must be removed.")
@click.option("--keep", "verdict", flag_value="keep", help="The media may stay.")
@click.option("--not-them", "verdict", flag_value="not-them",
              help="Possible matches only: the face is not this person (a look-alike); the media stays, and "
                   "faces that are this look-alike again are not queued for them.")
@click.option("--reviewer", required=True, help="Who decides (recorded in the audit trail).")
@click.option("--note", help="Why, in a few words.")
@click.option("--seen", metavar="VERSION",
              help="The item's version in `review list`: refused if the item was decided again since.")
@json_option
@pass_app
def review_decide(app: App, item: str, verdict: str | None, reviewer: str, note: str | None, seen: str | None,
                  as_json: bool) -> None:
    """Decide ITEM (an id from `review list`): --remove, --keep or --not-them.

    The verdict stands until the facts change (a new consent, an opt-in, an
    erasure, another match); then the item is decided by the rules again and,
    if still doubtful, queued again. --not-them stands while the face does.
    With --seen, the verdict is refused if the item changed since it was listed.
    """
    if verdict is None:
        raise click.UsageError("say --remove, --keep or --not-them")
    try:
        reviews.decide(app.session, item, verdict, reviewer, note, seen)
    except ActionError as exc:
        raise click.ClickException(str(exc)) from None
    emit({"item": item, "verdict": verdict, "reviewer": reviewer, "note": note}, as_json,
         f"item {item}: {verdict} (by {reviewer})")


COMMANDS = [review]
