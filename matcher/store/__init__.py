"""The store: the only code that speaks SQL.

One repository per kind of record, each taking and returning the dataclasses
of :mod:`matcher.model`: people and their references, consents, observations
(files, media, faces, packed embedding blocks), decisions (matches, decisions,
reviews, floods), credentials and sessions, the audit trail, and the report's
read queries. :class:`Store` opens the database (an SQLite file or a
PostgreSQL server, see :mod:`.core`), creates or migrates its tables, and
hands out the repositories and write transactions.
"""

from __future__ import annotations

from pathlib import Path

from matcher.clock import SYSTEM_CLOCK, Clock
from matcher.store.audit import AuditLog
from matcher.store.consents import Consents
from matcher.store.core import Database, NotCompacted, StoreConflict, StoreError, StoreFull, is_postgres, text_path
from matcher.store.credentials import Credentials
from matcher.store.decisions import Decisions
from matcher.store.observations import FACE_BLOCK, Observations
from matcher.store.people import People
from matcher.store.reports import Reports
from matcher.store.schema import COMPACTED, SCHEMA_VERSION, create_schema

__all__ = ["FACE_BLOCK", "SCHEMA_VERSION", "NotCompacted", "Store", "StoreConflict", "StoreError", "StoreFull",
           "display_name", "is_postgres", "text_path"]


def open_database(target: str | Path, clock: Clock) -> Database:
    """The database at ``target``: a ``postgresql://`` URL (PostgreSQL through psycopg 3, imported
    only then), ``sqlite:PATH``, or a file path (SQLite, the zero-setup default)."""
    if is_postgres(target):
        from matcher.store.postgres import PostgresDatabase

        return PostgresDatabase(str(target), clock)
    from matcher.store.sqlite import SqliteDatabase

    if isinstance(target, str) and target.startswith("sqlite:"):
        target = target[len("sqlite:"):]
    if not str(target):
        raise StoreError("no database given: a file path, sqlite:PATH or postgresql://USER@HOST/DB")
    return SqliteDatabase(target, clock)


def display_name(target: str | Path) -> str:
    """A database target as messages may show it: a URL without its password."""
    if is_postgres(target):
        from matcher.store.postgres import redact

        return redact(str(target))
    return str(target)


class Store:
    """One open database and its repositories."""

    def __init__(self, target: str | Path, clock: Clock = SYSTEM_CLOCK):
        """``target``: a file path (SQLite), ``sqlite:PATH``, or ``postgresql://USER@HOST/DB``."""
        self.database = open_database(target, clock)
        try:
            create_schema(self.database)
        except StoreError:
            self.database.close()
            raise
        except self.database.driver_errors as exc:  # the file or database is not ours
            self.database.close()
            raise StoreError(f"{self.database.name}: not a consent-matcher database ({exc})") from None
        self.name = self.database.name
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

    @property
    def in_write(self) -> bool:
        """Inside a write transaction."""
        return self.database.in_write

    def get_meta(self, key: str) -> str | None:
        return self.database.get_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self.database.set_meta(key, value)

    def secret(self, key: str) -> str:
        return self.database.secret(key)

    def compact(self) -> None:
        self.database.compact(tables=COMPACTED)

    def copy_into(self, other: "Store") -> dict[str, int]:
        """Copy every record into ``other`` (an empty store, of either backend): the rows copied per table."""
        from matcher.store.transfer import copy_rows

        return copy_rows(self.database, other.database)

    def close(self) -> None:
        self.database.close()
