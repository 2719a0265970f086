"""Moving the records to another database (an SQLite file to a PostgreSQL server), audit chain included."""

from __future__ import annotations

from contextlib import closing

from matcher.audit import verify
from matcher.clock import SYSTEM_CLOCK, Clock
from matcher.services.errors import ActionError
from matcher.store import Store, display_name


def move(source: str, target: str, clock: Clock = SYSTEM_CLOCK) -> dict:
    """Copy every record of ``source`` into the empty database ``target``, then check that the
    audit chain verifies there and ends at the same head as at the source.

    The source is read as it is (nothing is re-decided or appended to its audit trail) and is left
    untouched; stop scans and servers writing to it first.
    """
    if display_name(source) == display_name(target):
        raise ActionError("--from and --to name the same database")
    with closing(Store(source, clock)) as origin, closing(Store(target, clock)) as destination:
        before = verify(origin.audit.all())
        if not before.ok:
            raise ActionError(f"the audit trail of {origin.name} is broken at entry {before.broken_at} "
                              f"({before.problem}): not moved")
        rows = origin.copy_into(destination)
        after = verify(destination.audit.all())
        if not (after.ok and after.entries == before.entries and after.head == before.head):
            raise ActionError(f"the audit trail copied to {destination.name} does not verify as the original "
                              f"({after.problem or 'a different head'}): check the target")
        return {"from": origin.name, "to": destination.name, "rows": rows,
                "audit": {"entries": after.entries, "head": after.head, "ok": after.ok}}

