"""The embedded backend: one SQLite file through sqlite-utils, the zero-setup default."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Iterator

import sqlite_utils

from matcher.clock import Clock
from matcher.store.core import COMPACT_WAIT_SECONDS, Database, NotCompacted, StoreError, StoreFull


class SqliteDatabase(Database):
    """One connection to the database file, with short write transactions.

    One connection serves one caller at a time, but not always from one
    thread: the web app opens it in one worker thread and uses it in another.
    """

    dialect = "sqlite"
    driver_errors = (sqlite3.DatabaseError,)

    def __init__(self, path: str | Path, clock: Clock):
        super().__init__(clock)
        self.path = Path(path)
        self.name = str(self.path)
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

    @contextlib.contextmanager
    def _transaction(self):
        """BEGIN IMMEDIATE: the file's write lock is taken at the start, so what is read
        inside (the audit chain's last hash) cannot change before it is written."""
        if self.conn.in_transaction:  # one the sqlite3 module began itself: part of it
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

    def execute(self, sql: str, params=()) -> sqlite3.Cursor:
        return self.conn.execute(sql, list(params))

    def executemany(self, sql: str, rows) -> None:
        self.conn.executemany(sql, rows)

    def stream(self, sql: str, params=()) -> Iterator[tuple]:
        yield from self.execute(sql, params)

    def insert(self, sql: str, params=()) -> int:
        return self.execute(sql, params).lastrowid

    def compact(self, wait: float = COMPACT_WAIT_SECONDS, tables: tuple[str, ...] = ()) -> None:
        """Rewrite the file without free pages, and empty the write-ahead log: deleted
        rows then survive nowhere in the database's files (``tables``: all of them, here).

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
