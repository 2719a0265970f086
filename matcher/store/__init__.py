"""The store: the only code that speaks SQL.

One repository per kind of record, each taking and returning the dataclasses
of :mod:`matcher.model`: people and their references, consents, observations
(files, media, faces, packed embedding blocks), decisions (matches, decisions,
reviews, floods), credentials and sessions, the audit trail, and the report's
read queries. :class:`Store` opens the database, creates or migrates its
tables, and hands out the repositories and write transactions.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from matcher.clock import SYSTEM_CLOCK, Clock
from matcher.store.audit import AuditLog
from matcher.store.consents import Consents
from matcher.store.core import Database, NotCompacted, StoreError, StoreFull, text_path
from matcher.store.credentials import Credentials
from matcher.store.decisions import Decisions
from matcher.store.observations import FACE_BLOCK, Observations
from matcher.store.people import People
from matcher.store.reports import Reports
from matcher.store.schema import SCHEMA_VERSION, create_schema

__all__ = ["FACE_BLOCK", "SCHEMA_VERSION", "NotCompacted", "Store", "StoreError", "StoreFull", "text_path"]


class Store:
    """One open database and its repositories."""

    def __init__(self, path: str | Path, clock: Clock = SYSTEM_CLOCK):
        self.database = Database(path, clock)
        try:
            create_schema(self.database)
        except sqlite3.DatabaseError as exc:
            self.database.close()
            raise StoreError(f"{path}: not a consent-matcher database ({exc})") from None
        self.path = self.database.path
        self.people = People(self.database)
        self.consents = Consents(self.database)
        self.observations = Observations(self.database)
        self.decisions = Decisions(self.database)
        self.credentials = Credentials(self.database)
        self.audit = AuditLog(self.database)
        self.reports = Reports(self.database)

    def write(self):
        """One write transaction; repositories' writes inside it land together or not at all."""
        return self.database.write()

    def get_meta(self, key: str) -> str | None:
        return self.database.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.database.set_meta(key, value)

    def secret(self, key: str) -> str:
        return self.database.secret(key)

    def compact(self) -> None:
        self.database.compact()

    def close(self) -> None:
        self.database.close()
