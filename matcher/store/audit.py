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
        """Add entries (inside the caller's write transaction, or one of their own): the last
        hash is read under the write lock, so two writers cannot both link to it."""
        if not entries:
            return
        with self.db.write():
            prev = self.db.one("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") or ""
            at = self.db.now()
            rows = []
            for entry in entries:
                fields = {"at": at, **asdict(entry)}
                if entry.about is not None and entry.detail is not None:
                    fields["detail"] = self.keys.seal(entry.about, entry.detail)
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
        """The id of the latest entry changing the facts decisions rest on (enrollment,
        consent, opt-in/out, erasure, review): 0 when none."""
        return self.db.one(f"SELECT max(id) FROM audit WHERE event IN ({marks(FACT_EVENTS)})", FACT_EVENTS) or 0
