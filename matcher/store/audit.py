"""The audit trail as stored: entries appended with their link and hash, in order."""

from __future__ import annotations

from dataclasses import asdict
from typing import Iterator

from matcher.audit import FACT_EVENTS, FIELDS, entry_hash
from matcher.model import AuditEntry, NewAuditEntry
from matcher.store.core import Database, marks
from matcher.store.shredding import PersonKeys


class AuditLog:
    def __init__(self, database: Database):
        self.db = database
        self.keys = PersonKeys(database)

    def append(self, entries: list[NewAuditEntry]) -> None:
        """Add entries (inside the caller's write transaction, or one of their own).

        Personal details are sealed now; the entries are linked into the chain as the
        transaction commits, under the audit lock: the last hash is read under it, so two
        writers cannot both link to it, and the lock is held only while the entries are
        written (many writers run side by side until then).
        """
        if not entries:
            return
        with self.db.write():
            if any(entry.event in FACT_EVENTS for entry in entries):
                # A change of the facts decisions rest on waits for the decisions being written
                # (they hold these facts steady, see hold_facts) and is counted.
                self.db.lock("facts")
                self.db.increment_meta("facts_version")
            sealed = []
            for entry in entries:
                fields = asdict(entry)
                if entry.about is not None and entry.detail is not None:
                    fields["detail"] = self.keys.seal(entry.about, entry.detail)
                sealed.append(fields)
            self.db.before_commit(lambda: self._link(sealed))

    def _link(self, sealed: list[dict]) -> None:
        self.db.lock("audit")
        prev = self.db.one("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") or ""
        at = self.db.now()
        rows = []
        for entry in sealed:
            fields = {"at": at, **entry}
            digest = entry_hash(prev, fields)
            rows.append([*(fields[name] for name in FIELDS), prev, digest])
            prev = digest
        self.db.executemany(
            f"INSERT INTO audit ({', '.join(FIELDS)}, prev_hash, hash) VALUES ({marks(FIELDS) + ',?,?'})", rows)

    def entries(self, since: str | None = None) -> list[AuditEntry]:
        """Entries as people read them: personal details decrypted, or said to be erased."""
        where, params = "", []
        if since:
            where, params = "WHERE at >= ?", [since]
        return [AuditEntry(**{**row, "detail": self.keys.open(row["detail"])})
                for row in self.db.query(f"SELECT * FROM audit {where} ORDER BY id", params)]

    def all(self) -> Iterator[AuditEntry]:
        """Every entry in order as stored (what the chain's hashes cover), read as it goes."""
        for row in self.db.query(f"SELECT id, {', '.join(FIELDS)}, prev_hash, hash FROM audit ORDER BY id"):
            yield AuditEntry(**row)

    def forget_person(self, person_id: int) -> None:
        """Destroy the key of the person's personal details: they can no longer be read."""
        self.keys.destroy(person_id)

    def last_fact_change(self) -> int:
        """How many changes of the facts decisions rest on (enrollment, verification, consent,
        opt-in/out, erasure, review) were committed: it changes with each."""
        return int(self.db.get_meta("facts_version") or 0)

    def hold_facts(self) -> int:
        """Inside a write: keep the facts decisions rest on from changing until it ends (other
        writers of decisions go on side by side); :meth:`last_fact_change` as it then stands."""
        self.db.lock("facts", shared=True)
        return self.last_fact_change()
