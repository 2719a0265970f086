"""The server backend: a PostgreSQL database through psycopg 3, shared by many writers.

Selected by a ``postgresql://USER@HOST/DB`` target; psycopg is imported only
then (the ``[postgres]`` extra). Reads run outside transactions (each sees what
was committed when it started); every write is one transaction of its own,
and the few writers that must not interleave (appends to the audit chain,
packing face blocks) take advisory locks held until their transaction ends.

The repositories' SQL uses ``?`` placeholders, as SQLite does; here they
become psycopg's ``%s`` (no statement of ours has a ``?`` or ``%`` that is not
a placeholder or inside a string literal written with ``%%``-safe text).
"""

from __future__ import annotations

import contextlib
import re
from typing import Iterator

from matcher.clock import Clock
from matcher.store.core import (COMPACT_WAIT_SECONDS, Database, NotCompacted, StoreConflict, StoreError,
                                StoreFull)

# Advisory lock keys: one number per named lock (any constant unlikely to clash with other software).
LOCKS = {"schema": 0x636D_0001, "audit": 0x636D_0002, "faces": 0x636D_0003, "facts": 0x636D_0004}
CONNECT_TIMEOUT_SECONDS = 10


def redact(url: str) -> str:
    """The URL as it may be shown: without its password (in the authority part or as a parameter)."""
    url = re.sub(r"(://[^/@?#]*?:)[^/@?#]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", url)


def _scrub(text: str, url: str) -> str:
    """A message from the driver, with anything of the URL's password taken out."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in filter(None, {password, password and unquote(password)}):
        text = text.replace(secret, "***")
    return redact(text)


def _placeholders(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


def connect_params(url: str) -> dict:
    """The connection parameters of ``url``, checked: a clear error naming what is wrong."""
    name = redact(url)
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        raise StoreError(f"{name}: PostgreSQL needs psycopg 3: pip install 'consent-matcher[postgres]'") from None
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise StoreError(f"not a usable PostgreSQL URL {name}: {_scrub(str(exc), url)}") from None
    if not params.get("dbname"):
        raise StoreError(f"{name} names no database: postgresql://USER@HOST/DB")
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_SECONDS))
    params.setdefault("application_name", "consent-matcher")
    return params


class PostgresDatabase(Database):
    dialect = "postgresql"
    greatest = "greatest"
    is_ = "IS NOT DISTINCT FROM"
    is_not = "IS DISTINCT FROM"

    def __init__(self, url: str, clock: Clock):
        super().__init__(clock)
        self.url, self.name = url, redact(url)
        params = connect_params(url)
        import psycopg

        self.driver_errors = (psycopg.Error,)
        try:
            self.conn = psycopg.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot open {self.name}: {_scrub(str(exc), url).strip()}") from None

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def _transaction(self):
        import psycopg
        from psycopg import errors

        try:
            with self.conn.transaction():
                yield
        except (errors.DeadlockDetected, errors.SerializationFailure) as exc:
            raise StoreConflict(f"{self.name}: {exc}".strip()) from None
        except (errors.DiskFull, errors.ProgramLimitExceeded, errors.IoError) as exc:
            raise StoreFull(f"cannot write {self.name}: {exc}".strip()) from None
        except psycopg.OperationalError as exc:
            raise StoreError(f"{self.name}: {_scrub(str(exc), self.url)}".strip()) from None

    def query(self, sql: str, params=()) -> Iterator[dict]:
        from psycopg.rows import dict_row

        return self.conn.cursor(row_factory=dict_row).execute(_placeholders(sql), list(params))

    def execute(self, sql: str, params=()):
        return self.conn.execute(_placeholders(sql), list(params))

    def executemany(self, sql: str, rows) -> None:
        rows = list(rows)
        if rows:
            self.conn.cursor().executemany(_placeholders(sql), rows)

    def stream(self, sql: str, params=()) -> Iterator[tuple]:
        """A server-side cursor in a read-only transaction of its own (or in the current write)."""
        if self.in_write:
            yield from self.execute(sql, params)
            return
        with self.conn.transaction():
            self.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            with self.conn.cursor(name="stream") as cursor:
                cursor.itersize = 1
                cursor.execute(_placeholders(sql), list(params), binary=True)  # bytea as bytes, not hex
                yield from cursor

    def bulk_insert(self, table: str, columns: list[str], rows) -> None:
        """COPY: an order of magnitude faster than INSERTs for millions of rows."""
        names = ", ".join(f'"{column}"' for column in columns)
        with self.conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert(self, sql: str, params=()) -> int:
        return self.execute(sql + " RETURNING id", params).fetchone()[0]

    @contextlib.contextmanager
    def held(self, name: str):
        """A session-level advisory lock, taken outside a transaction: the statements run while it is
        held start transactions of their own, and so see the catalog as it is (a lock taken inside a
        transaction does not refresh its cached view of which tables exist)."""
        assert not self.in_write, "a session lock inside a write transaction"
        self.execute("SELECT pg_advisory_lock(?)", [LOCKS[name]])
        try:
            yield
        finally:
            self.execute("SELECT pg_advisory_unlock(?)", [LOCKS[name]])

    def after_copy(self, tables: list[str]) -> None:
        for table in tables:
            self.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                         f"FROM {table}")

    def lock(self, name: str, shared: bool = False) -> None:
        assert self.in_write, "an advisory lock outside a write transaction"
        if (name, shared) in self._locks_held or (name, False) in self._locks_held:
            return
        self._locks_held.add((name, shared))
        self.execute(f"SELECT pg_advisory_xact_lock{'_shared' if shared else ''}(?)", [LOCKS[name]])

    def compact(self, wait: float = COMPACT_WAIT_SECONDS, tables: tuple[str, ...] = ()) -> None:
        """Leave no deleted row in the cluster's files: rewrite ``tables`` (VACUUM FULL: the old
        files, dead row versions and all, are dropped), then end the write-ahead log segment
        that holds the deletions and checkpoint, so that segment is removed.

        Needs ``wal_recycle = off`` (a recycled segment keeps its old bytes under a new
        name) and ``wal_keep_size = 0``; the role needs ``pg_checkpoint`` and EXECUTE on
        ``pg_switch_wal()`` (or to be a superuser). :class:`NotCompacted` says what is missing.
        """
        import psycopg

        settings = {row[0]: row[1] for row in self.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('wal_recycle', 'wal_keep_size')")}
        if settings.get("wal_recycle") != "off" or settings.get("wal_keep_size") not in ("0", None):
            raise NotCompacted(
                f"{self.name}: the server keeps old write-ahead log segments (wal_recycle = "
                f"{settings.get('wal_recycle')}, wal_keep_size = {settings.get('wal_keep_size')}), so deleted rows "
                "survive in them: set wal_recycle = off and wal_keep_size = 0 (see the README)")
        try:
            self.execute("SELECT set_config('lock_timeout', ?, false)", [f"{int(wait * 1000)}ms"])
            for table in tables:
                self.execute(f"VACUUM FULL {table}")
            self.execute("SELECT pg_switch_wal()")
            self.execute("CHECKPOINT")
        except psycopg.errors.LockNotAvailable:
            raise NotCompacted(f"{self.name}: another connection holds a table of the erased rows open "
                               "(a long transaction), so they are still in its files") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise NotCompacted(f"{self.name}: the role may not rewrite the tables and the write-ahead log "
                               f"({str(exc).strip()}): grant it pg_checkpoint and EXECUTE on pg_switch_wal() "
                               "(see the README)") from None
        finally:
            self.execute("RESET lock_timeout")
