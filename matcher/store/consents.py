"""Consents: a person's yes to one media item, one uploader, until a date, or a combination."""

from __future__ import annotations

from matcher.model import Consent
from matcher.store.core import Database


class Consents:
    def __init__(self, database: Database):
        self.db = database

    def add(self, person_id: int, media_sha256: str | None, uploader: str | None, until: str | None) -> int:
        with self.db.write():
            return self.db.insert(
                "INSERT INTO consents (person_id, media_sha256, uploader, until, granted_at) VALUES (?, ?, ?, ?, ?)",
                [person_id, media_sha256, uploader, until, self.db.now()],
            )

    def revoke(self, consent_id: int, person_id: int | None = None) -> int | None:
        """End an active consent (only one of ``person_id``'s when given); the person it was of,
        or None when there is no such active consent."""
        with self.db.write():
            owner = self.db.one("SELECT person_id FROM consents WHERE id = ? AND revoked_at IS NULL "
                                "AND coalesce(?, person_id) = person_id", [consent_id, person_id])
            if owner is None:
                return None
            self.db.execute("UPDATE consents SET revoked_at = ? WHERE id = ?", [self.db.now(), consent_id])
        return owner

    def of_person(self, person_id: int) -> list[Consent]:
        return [Consent(**row) for row in self.db.query(
            "SELECT * FROM consents WHERE person_id = ? ORDER BY id", [person_id])]

    def active(self) -> list[Consent]:
        return [Consent(**row) for row in self.db.query("SELECT * FROM consents WHERE revoked_at IS NULL")]

    def people_whose_consent_ended(self, after: str, before: str) -> list[int]:
        """People with an active consent whose last day is on or after ``after`` and before ``before``."""
        return [row["person_id"] for row in self.db.query(
            "SELECT DISTINCT person_id FROM consents WHERE revoked_at IS NULL AND until IS NOT NULL "
            "AND until >= ? AND until < ?", [after, before])]

    def delete_of_person(self, person_id: int) -> int:
        with self.db.write():
            return self.db.execute("DELETE FROM consents WHERE person_id = ?", [person_id]).rowcount
