"""What every command shares: the session on the database, output as text or JSON, people by name."""

from __future__ import annotations

import json

import click

from matcher.clock import Clock
from matcher.model import Person
from matcher.policy import Policy
from matcher.services import Session, open_session
from matcher.store import StoreError


class App:
    """The options of the command line, and the session opened on first use."""

    def __init__(self, db_path: str, policy: Policy, clock: Clock):
        self.db_path, self.policy, self.clock = db_path, policy, clock
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            try:
                self._session = open_session(self.db_path, self.policy, clock=self.clock)
            except (StoreError, OSError) as exc:
                raise click.ClickException(str(exc)) from None
            if self._session.rules_changed:
                click.echo(f"rules {self.policy.path} in force: decisions re-made from stored facts", err=True)
        return self._session

    def person(self, name: str) -> Person:
        """The person enrolled under ``name``, or a clear refusal."""
        person = self.session.store.people.by_name(name)
        if person is None:
            raise click.ClickException(f"nobody named {name!r} is enrolled (see: consent-matcher people)")
        return person


pass_app = click.make_pass_decorator(App)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def emit(data, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else text)
