"""The embedded database: one SQLite file through sqlite-utils, its transactions and settings.

Only the store's repositories use this module; nothing else in the package
speaks SQL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import sqlite_utils

from matcher.clock import Clock


class StoreError(RuntimeError):
    pass


class StoreFull(StoreError):
    """The database cannot be written (a full disk, a size limit, a failing disk): nothing of the
    write that failed was kept, and what was written before stands."""


class NotCompacted(StoreError):
    """Deleted rows still lie in the database's files: another connection holds an old snapshot of them."""


# How long compacting waits for other connections to let go of the erased pages.
COMPACT_WAIT_SECONDS = 10.0


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


def marks(values) -> str:
    """``?, ?, ?``: one placeholder per value, for ``IN (...)``."""
    return ",".join("?" * len(values))


class Database:
    """One connection to the database file, with short write transactions.

    One connection serves one caller at a time, but not always from one
    thread: the web app opens it in one worker thread and uses it in another.
    """

    def __init__(self, path: str | Path, clock: Clock):
        self.path = Path(path)
        self.clock = clock
        create_private(self.path)
        try:
            self.db = sqlite_utils.Database(sqlite3.connect(str(self.path), check_same_thread=False))
            # WAL and a busy timeout let two scans share the file without
            # "database is locked"; writes are short transactions.
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a consent-matcher database ({exc})") from None

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()

    def now(self) -> str:
        return self.clock.now()

    @contextlib.contextmanager
    def write(self):
        """One write transaction, its lock taken at the start (BEGIN IMMEDIATE), so
        what is read inside it (the audit chain's last hash) cannot change
        before it is written. Nested: part of the caller's transaction."""
        if self.conn.in_transaction:
            yield
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.rollback()
                raise
            self.conn.commit()
        except sqlite3.OperationalError as exc:
            # SQLITE_FULL ("database or disk is full"), or SQLITE_IOERR when a write is refused
            # (a file size limit, a failing disk): either way this write cannot land.
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
                raise StoreFull(f"cannot write {self.path}: {exc}") from None
            raise

    def query(self, sql: str, params=()) -> Iterator[dict]:
        return self.db.query(sql, list(params))

    def one(self, sql: str, params=()):
        """The first column of the first row, or None."""
        row = self.conn.execute(sql, list(params)).fetchone()
        return row[0] if row else None

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, list(params))

    def executemany(self, sql: str, rows) -> None:
        self.conn.executemany(sql, rows)

    def delete_in(self, table: str, column: str, values: list) -> int:
        """Delete the rows whose ``column`` is one of ``values`` (in chunks: SQLite bounds the parameters)."""
        deleted = 0
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            deleted += self.execute(f"DELETE FROM {table} WHERE {column} IN ({marks(chunk)})", chunk).rowcount
        return deleted

    # -- settings kept in the file ----------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        return self.one("SELECT value FROM meta WHERE key = ?", [key])

    def set_meta(self, key: str, value: str) -> None:
        with self.write():
            self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    def secret(self, key: str) -> str:
        """A random secret of this database (made on first use), e.g. for opaque ids."""
        with self.write():
            self.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, lower(hex(randomblob(32))))", [key])
            return self.get_meta(key)

    def increment_meta(self, key: str) -> int:
        """Add one to a counter kept in the file; its new value."""
        with self.write():
            self.execute("INSERT INTO meta (key, value) VALUES (?, '1') ON CONFLICT (key) "
                         "DO UPDATE SET value = CAST(value AS INTEGER) + 1", [key])
            return int(self.get_meta(key))

    def compact(self, wait: float = COMPACT_WAIT_SECONDS) -> None:
        """Rewrite the file without free pages, and empty the write-ahead log: deleted
        rows then survive nowhere in the database's files.

        While another connection reads an older snapshot, its pages (erased rows
        among them) cannot be overwritten: the checkpoint is tried again for up
        to ``wait`` seconds, then :class:`NotCompacted` says so.
        """
        self.execute("VACUUM")
        deadline = time.monotonic() + wait
        while True:
            busy, wal_frames, copied = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy and wal_frames == copied:
                return
            if time.monotonic() >= deadline:
                raise NotCompacted(
                    f"{self.path}: another process has the database open in a read that began before the "
                    "change, so the deleted data is still in its files (write-ahead log)")
            time.sleep(0.2)


def create_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only.

    SQLite gives its -wal and -shm files the same permissions as the database.
    """
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it between our check and now, with the same mode
    os.close(fd)
