"""The database behind the store: what both backends share.

Each backend (:mod:`.sqlite`, :mod:`.postgres`; :func:`matcher.store.open_database`
picks one) gives one connection with short write transactions; the
repositories write SQL that both accept, and ask the database for the few
spellings that differ (:attr:`Database.greatest`, :attr:`Database.is_`,
:attr:`Database.is_not`, :meth:`Database.insert`).

Only the store's repositories use this module; nothing else in the package
speaks SQL.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from matcher.clock import Clock


class StoreError(RuntimeError):
    pass


class StoreFull(StoreError):
    """The database cannot be written (a full disk, a size limit, a failing disk): nothing of the
    write that failed was kept, and what was written before stands."""


class StoreConflict(StoreError):
    """Two writers' transactions crossed (a deadlock, a serialisation failure): this one was
    rolled back whole and may simply be run again."""


class NotCompacted(StoreError):
    """Deleted rows still lie in the database's files: another connection holds an old snapshot of them."""


# How long compacting waits for other connections to let go of the erased pages.
COMPACT_WAIT_SECONDS = 10.0

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def text_path(path: str) -> str:
    """A file path as stored and reported: valid UTF-8 text.

    A name that is not UTF-8 (``os.walk`` hands its bytes over as lone
    surrogates, which SQLite and JSON refuse) keeps those bytes as ``\\xNN``.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _chunks(values: list, size: int = 500):
    """``values`` in slices of ``size``: SQLite bounds the parameters of one statement."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(values) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)`` (``NULL`` for none: ``IN (NULL)``
    matches nothing on both backends, where PostgreSQL refuses ``IN ()``)."""
    return ",".join("?" * len(values)) or "NULL"


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.lower().startswith(POSTGRES_SCHEMES)


class Database:
    """One connection and its write transactions; the backends fill in the connection."""

    dialect = ""
    # Spellings that differ between the backends.
    greatest = "max"  # the larger of two values
    is_ = "IS"  # equal, NULLs included
    is_not = "IS NOT"  # different, NULLs included

    def __init__(self, clock: Clock):
        self.clock = clock
        self._depth = 0
        self._before_commit: list[Callable[[], None]] = []
        self._locks_held: set[tuple[str, bool]] = set()  # taken in the current write transaction

    # -- what each backend provides ----------------------------------------------------------

    name: str = ""  # what messages call it (a URL without its password)
    driver_errors: tuple[type[Exception], ...] = ()  # what the driver raises on a bad database

    def close(self) -> None:
        raise NotImplementedError

    def query(self, sql: str, params=()) -> Iterator[dict]:
        raise NotImplementedError

    def execute(self, sql: str, params=()):
        """Run one statement; a cursor with ``rowcount`` and ``fetchone()`` (rows as tuples)."""
        raise NotImplementedError

    def executemany(self, sql: str, rows) -> None:
        raise NotImplementedError

    def bulk_insert(self, table: str, columns: list[str], rows) -> None:
        """Insert many rows (an iterable of value lists in ``columns`` order) as fast as the backend can."""
        names = ", ".join(f'"{column}"' for column in columns)
        self.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks(columns)})", rows)

    def stream(self, sql: str, params=()) -> Iterator[tuple]:
        """Rows (tuples) read one at a time from one snapshot, for results too large to hold at once."""
        raise NotImplementedError

    def insert(self, sql: str, params=()) -> int:
        """Run an INSERT into a table with an ``id`` key; the new row's id."""
        raise NotImplementedError

    def lock(self, name: str, shared: bool = False) -> None:
        """Hold the named lock until this write transaction ends (writers that must not
        interleave, such as appends to the audit chain, take it)."""

    @contextlib.contextmanager
    def held(self, name: str):
        """Hold the named lock across transactions (outside any), for work that must run alone."""
        yield

    def compact(self, wait: float = COMPACT_WAIT_SECONDS, tables: tuple[str, ...] = ()) -> None:
        """Leave no deleted row of ``tables`` anywhere in the database's files."""
        raise NotImplementedError

    def _transaction(self):
        raise NotImplementedError

    def after_copy(self, tables: list[str]) -> None:
        """Rows with their ids were copied into ``tables``: new rows must get ids past them."""

    # -- shared ---------------------------------------------------------------------------

    def now(self) -> str:
        return self.clock.now()

    def one(self, sql: str, params=()):
        """The first column of the first row, or None."""
        row = self.execute(sql, params).fetchone()
        return row[0] if row else None

    @property
    def in_write(self) -> bool:
        return self._depth > 0

    @contextlib.contextmanager
    def write(self):
        """One write transaction. Nested: part of the caller's transaction.

        What was registered with :meth:`before_commit` runs last, inside it.
        """
        if self._depth:
            yield
            return
        self._depth = 1
        try:
            with self._transaction():
                yield
                while self._before_commit:
                    self._before_commit.pop(0)()
        finally:
            self._depth = 0
            self._before_commit.clear()
            self._locks_held.clear()

    def before_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` at the end of the current write transaction, just before it commits
        (writes that take a lock shared by every writer hold it only for that moment)."""
        assert self._depth, "before_commit outside a write transaction"
        self._before_commit.append(action)

    def delete_in(self, table: str, column: str, values: list) -> int:
        """Delete the rows whose ``column`` is one of ``values``."""
        return sum(self.execute(f"DELETE FROM {table} WHERE {column} IN ({marks(chunk)})", chunk).rowcount
                   for chunk in _chunks(values))

    def query_in(self, sql: str, values: list) -> Iterator[dict]:
        """The rows of ``sql``, whose one ``IN ({})`` is filled with ``values``."""
        for chunk in _chunks(values):
            yield from self.query(sql.format(marks(chunk)), chunk)

    # -- settings kept in the database -------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        return self.one("SELECT value FROM meta WHERE key = ?", [key])

    def set_meta(self, key: str, value: str) -> None:
        with self.write():
            self.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [key, value])

    def secret(self, key: str) -> str:
        """A random secret of this database (made on first use), e.g. for opaque ids."""
        found = self.get_meta(key)
        if found is not None:  # the usual case: a read, not a write transaction
            return found
        with self.write():
            self.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                         [key, secrets.token_hex(32)])
            return self.get_meta(key)

    def increment_meta(self, key: str) -> int:
        """Add one to a counter kept in the database; its new value (two writers get two values)."""
        with self.write():
            self.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) "
                         "DO UPDATE SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)", [key])
            return int(self.get_meta(key))
