"""A session on the records: the store, the rules, the engine's name and the clock, with decisions brought up to date.

Every shell (a CLI command, a web request, a scan) opens one with
:func:`open_session`, so stale decisions are refreshed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from matcher.clock import SYSTEM_CLOCK, Clock
from matcher.model import NewAuditEntry
from matcher.observe import SCAN_ENGINE
from matcher.policy import Policy
from matcher.services.deciding import Decider
from matcher.store import Store


@dataclass
class Session:
    store: Store
    policy: Policy
    engine: str  # the name of the embeddings compared (see matcher.faces)
    clock: Clock
    rules_changed: bool = False  # opening it re-decided everything under changed rules

    def decider(self, actor: str = "system") -> Decider:
        return Decider(self.store, self.policy, self.engine, self.clock.today(), actor)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_session(db_path: str | Path, policy: Policy, engine: str = SCAN_ENGINE.name,
                 clock: Clock = SYSTEM_CLOCK) -> Session:
    """Open the database and bring its decisions up to date (see :func:`refresh_stale_decisions`)."""
    session = Session(Store(db_path, clock), policy, engine, clock)
    try:
        session.rules_changed = refresh_stale_decisions(session)
    except BaseException:
        session.close()
        raise
    return session


def refresh_stale_decisions(session: Session) -> bool:
    """Bring stored decisions up to date before they are used.

    - The rules file differs from the one last used: everything is re-decided
      from stored facts (returns True, except for a new database).
    - A day has passed and some consent ended meanwhile (``--until``): the
      media of those people are re-decided.
    """
    store, policy = session.store, session.policy
    previous = store.get_meta("policy_sha256")
    current_day, last_day = session.clock.today(), store.get_meta("decided_on")
    if previous != policy.sha256:
        with store.write():
            session.decider().update()
            store.set_meta("policy_sha256", policy.sha256)
            store.set_meta("decided_on", current_day)
            store.audit.append([NewAuditEntry("system", "rules", "rules", old=previous, new=policy.sha256,
                                              policy_sha256=policy.sha256, detail=policy.path)])
        return previous is not None
    if last_day != current_day:
        with store.write():
            decider = session.decider()
            for person_id in store.consents.people_whose_consent_ended(last_day or "", current_day):
                decider.redecide_person(person_id)
            store.set_meta("decided_on", current_day)
    return False
