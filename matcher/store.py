"""The embedded store: one SQLite file, through sqlite-utils.

Observations (media, faces with their embeddings, and the matches found
between faces and enrolled people) are kept apart from decisions, so that a
change of consent, enrollment or policy re-decides from stored facts without
decoding any media again. Photos are never stored: only embeddings and hashes.

Each scanned file is recorded in one transaction, so a scan killed at any
moment leaves either the whole result of a file or nothing of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

# 2: one decision per (file, person) instead of per face (a video yields one
# decision per person seen in it). Decisions are derived data, so moving from 1
# drops them and they are re-made from the stored faces and matches.
SCHEMA_VERSION = 2


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


class StoreError(RuntimeError):
    pass


@dataclass
class Person:
    id: int
    name: str
    public_figure: bool
    accounts: list[str]
    references: int = 0


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        _create_private(self.path)
        try:
            self.db = sqlite_utils.Database(str(self.path))
            # WAL and a busy timeout let two scans share the file without
            # "database is locked"; writes are short transactions.
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._create_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a consent-matcher database ({exc})") from None

    def close(self) -> None:
        self.db.close()

    # -- schema --------------------------------------------------------------

    def _create_schema(self) -> None:
        db = self.db
        with db.conn:
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["people"].create(
                {"id": int, "name": str, "public_figure": int, "accounts": str, "enrolled_at": str},
                pk="id",
                not_null={"name"},
                if_not_exists=True,
            )
            db["people"].create_index(["name"], unique=True, if_not_exists=True)
            db["reference_faces"].create(
                {"id": int, "person_id": int, "engine": str, "embedding": bytes, "photo_sha256": str, "added_at": str},
                pk="id",
                foreign_keys=[("person_id", "people", "id")],
                if_not_exists=True,
            )
            db["reference_faces"].create_index(["person_id", "photo_sha256"], unique=True, if_not_exists=True)
            db["consents"].create(
                {
                    "id": int,
                    "person_id": int,
                    "media_sha256": str,
                    "uploader": str,
                    "until": str,
                    "granted_at": str,
                    "revoked_at": str,
                },
                pk="id",
                foreign_keys=[("person_id", "people", "id")],
                if_not_exists=True,
            )
            db["media"].create(
                {
                    "sha256": str,
                    "kind": str,
                    "format": str,
                    "status": str,
                    "error": str,
                    "width": int,
                    "height": int,
                    "engine": str,
                    "scanned_at": str,
                },
                pk="sha256",
                if_not_exists=True,
            )
            db["files"].create(
                {
                    "path": str,
                    "sha256": str,
                    "size": int,
                    "mtime_ns": int,
                    "status": str,
                    "error": str,
                    "uploader": str,
                    "context": str,
                    "seen_at": str,
                    "last_scan": int,
                },
                pk="path",
                if_not_exists=True,
            )
            if "last_scan" not in db["files"].columns_dict:  # databases of version 1
                db["files"].add_column("last_scan", int)
            db["files"].create_index(["sha256"], if_not_exists=True)
            db["faces"].create(
                {
                    "id": int,
                    "sha256": str,
                    "seq": int,
                    "frame_time": float,
                    "top": int,
                    "right": int,
                    "bottom": int,
                    "left": int,
                    "embedding": bytes,
                },
                pk="id",
                foreign_keys=[("sha256", "media", "sha256")],
                if_not_exists=True,
            )
            db["faces"].create_index(["sha256", "seq"], unique=True, if_not_exists=True)
            # The observed match of a face: its assigned person and distance.
            db["matches"].create(
                {"face_id": int, "person_id": int, "distance": float},
                pk="face_id",
                foreign_keys=[("face_id", "faces", "id"), ("person_id", "people", "id")],
                if_not_exists=True,
            )
            db["matches"].create_index(["person_id"], if_not_exists=True)
            if self.get_meta("schema_version") == "1":
                db["decisions"].drop(ignore=True)
                db.execute("DELETE FROM meta WHERE key = 'policy_sha256'")  # forces re-deciding
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
            # One decision per person seen in a scanned file; face_id is that
            # person's closest face in it (the one whose distance decided).
            db["decisions"].create(
                {
                    "path": str,
                    "person_id": int,
                    "face_id": int,
                    "action": str,
                    "rule": str,
                    "reason": str,
                    "policy_sha256": str,
                    "decided_at": str,
                },
                pk=("path", "person_id"),
                if_not_exists=True,
            )
            db["decisions"].create_index(["person_id"], if_not_exists=True)
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    def get_meta(self, key: str) -> str | None:
        rows = list(self.db.query("SELECT value FROM meta WHERE key = ?", [key]))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.conn:
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    # -- people and references -------------------------------------------------

    def person(self, name: str) -> Person | None:
        rows = list(
            self.db.query(
                "SELECT p.*, (SELECT count(*) FROM reference_faces r WHERE r.person_id = p.id) AS refs "
                "FROM people p WHERE name = ?",
                [name],
            )
        )
        return _person(rows[0]) if rows else None

    def people(self) -> list[Person]:
        return [
            _person(row)
            for row in self.db.query(
                "SELECT p.*, (SELECT count(*) FROM reference_faces r WHERE r.person_id = p.id) AS refs "
                "FROM people p ORDER BY name"
            )
        ]

    def add_person_references(
        self,
        name: str,
        engine: str,
        references: list[tuple[str, np.ndarray]],
        public_figure: bool | None,
        accounts: list[str],
    ) -> tuple[Person, int]:
        """Create or extend a person with ``(photo_sha256, embedding)`` references.

        Returns the person and how many references were new (a photo enrolled
        twice is kept once).
        """
        with self.db.conn:
            existing = self.person(name)
            if existing is None:
                cursor = self.db.execute(
                    "INSERT INTO people (name, public_figure, accounts, enrolled_at) VALUES (?, ?, ?, ?)",
                    [name, int(bool(public_figure)), json.dumps(sorted(set(accounts))), now()],
                )
                person_id = cursor.lastrowid
            else:
                person_id = existing.id
                merged = sorted(set(existing.accounts) | set(accounts))
                flag = existing.public_figure if public_figure is None else public_figure
                self.db.execute(
                    "UPDATE people SET public_figure = ?, accounts = ? WHERE id = ?",
                    [int(flag), json.dumps(merged), person_id],
                )
            added = 0
            for photo_sha256, embedding in references:
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO reference_faces (person_id, engine, embedding, photo_sha256, added_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [person_id, engine, to_blob(embedding), photo_sha256, now()],
                )
                added += cursor.rowcount
        return self.person(name), added

    def references(self, engine: str) -> list[tuple[int, np.ndarray]]:
        return [
            (row["person_id"], from_blob(row["embedding"]))
            for row in self.db.query("SELECT person_id, embedding FROM reference_faces WHERE engine = ?", [engine])
        ]

    def person_references(self, person_id: int) -> list[np.ndarray]:
        return [
            from_blob(row["embedding"])
            for row in self.db.query("SELECT embedding FROM reference_faces WHERE person_id = ?", [person_id])
        ]

    # -- consents --------------------------------------------------------------

    def add_consent(self, person_id: int, media_sha256: str | None, uploader: str | None, until: str | None) -> int:
        with self.db.conn:
            cursor = self.db.execute(
                "INSERT INTO consents (person_id, media_sha256, uploader, until, granted_at) VALUES (?, ?, ?, ?, ?)",
                [person_id, media_sha256, uploader, until, now()],
            )
        return cursor.lastrowid

    def revoke_consent(self, consent_id: int) -> bool:
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE consents SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", [now(), consent_id]
            )
        return cursor.rowcount > 0

    def consents_of(self, person_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM consents WHERE person_id = ? ORDER BY id", [person_id]))

    def active_consents(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM consents WHERE revoked_at IS NULL"))

    # -- scanning --------------------------------------------------------------

    def file_unchanged(self, path: str, size: int, mtime_ns: int) -> bool:
        """True when this path was recorded with the same size and time, and its scan is complete."""
        rows = list(
            self.db.query(
                "SELECT f.sha256, f.status, m.sha256 AS media FROM files f LEFT JOIN media m ON m.sha256 = f.sha256 "
                "WHERE f.path = ? AND f.size = ? AND f.mtime_ns = ?",
                [text_path(path), size, mtime_ns],
            )
        )
        return bool(rows) and (rows[0]["media"] is not None or rows[0]["status"] == "error")

    def has_media(self, sha256: str) -> bool:
        return bool(list(self.db.query("SELECT 1 FROM media WHERE sha256 = ?", [sha256])))

    def begin_scan(self) -> int:
        """A new scan number: files seen by the scan are stamped with it."""
        with self.db.conn:
            number = int(self.get_meta("last_scan") or 0) + 1
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_scan', ?)", [str(number)])
        return number

    def mark_seen(self, path: str, scan: int) -> None:
        with self.db.conn:
            self.db.execute(
                "UPDATE files SET last_scan = max(coalesce(last_scan, 0), ?) WHERE path = ?", [scan, text_path(path)]
            )

    def forget_unseen(self, roots: list[str], scan: int) -> int:
        """Drop the files below ``roots`` that scan number ``scan`` did not see (deleted or moved away).

        Media that no file shows any more are dropped with their faces: facts
        about media no longer on the platform are not kept. Returns the number
        of files dropped.
        """
        dropped = 0
        with self.db.conn:
            for root in roots:
                root = text_path(root)
                prefix = root.rstrip(os.sep) + os.sep
                # substr, not LIKE: '%' and '_' are ordinary characters in folder names.
                where = "(path = ? OR substr(path, 1, ?) = ?) AND (last_scan IS NULL OR last_scan < ?)"
                params = [root, len(prefix), prefix, scan]
                self.db.execute(f"DELETE FROM decisions WHERE path IN (SELECT path FROM files WHERE {where})", params)
                dropped += self.db.execute(f"DELETE FROM files WHERE {where}", params).rowcount
            if dropped:
                orphans = "SELECT sha256 FROM media WHERE sha256 NOT IN (SELECT sha256 FROM files WHERE sha256 IS NOT NULL)"
                self.db.execute(
                    f"DELETE FROM matches WHERE face_id IN (SELECT id FROM faces WHERE sha256 IN ({orphans}))"
                )
                self.db.execute(f"DELETE FROM faces WHERE sha256 IN ({orphans})")
                self.db.execute(f"DELETE FROM media WHERE sha256 IN ({orphans})")
        return dropped

    def record(self, observation, metadata: dict | None, scan: int | None = None) -> None:
        """Record one scanned file: its path, and the media's faces if they are new.

        One transaction, so an interrupted scan never leaves half a file.
        """
        obs = observation
        metadata = metadata or {}
        context = json.dumps(sorted(metadata.get("context", [])))
        with self.db.conn:
            # OR IGNORE: another scan may have recorded the same content meanwhile;
            # then its faces stand and these are not added a second time.
            cursor = None
            if obs.sha256 is not None:
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO media (sha256, kind, format, status, error, width, height, engine, scanned_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        obs.sha256,
                        obs.kind,
                        obs.format,
                        "error" if obs.media_error else "ok",
                        obs.media_error,
                        obs.width,
                        obs.height,
                        obs.engine,
                        now(),
                    ],
                )
            if cursor is not None and cursor.rowcount == 1:
                for seq, face in enumerate(obs.faces):
                    box = face.box
                    self.db.execute(
                        "INSERT INTO faces (sha256, seq, frame_time, top, right, bottom, left, embedding) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [obs.sha256, seq, face.frame_time, box.top, box.right, box.bottom, box.left, to_blob(face.embedding)],
                    )
            self.db.execute(
                # last_scan never goes back: a concurrent scan with a later number
                # may have seen this file already, and must not drop it as unseen.
                "INSERT INTO files (path, sha256, size, mtime_ns, status, error, uploader, context, seen_at, last_scan) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "sha256 = excluded.sha256, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "status = excluded.status, error = excluded.error, uploader = excluded.uploader, "
                "context = excluded.context, seen_at = excluded.seen_at, "
                "last_scan = max(coalesce(files.last_scan, 0), coalesce(excluded.last_scan, 0))",
                [
                    text_path(obs.path),
                    obs.sha256,
                    obs.size,
                    obs.mtime_ns,
                    "error" if obs.file_error else "ok",
                    obs.file_error,
                    metadata.get("uploader"),
                    context,
                    now(),
                    scan,
                ],
            )

    def update_file_metadata(self, path: str, metadata: dict) -> bool:
        """Apply manifest metadata to an already recorded file; True when it changed."""
        uploader = metadata.get("uploader")
        context = json.dumps(sorted(metadata.get("context", [])))
        with self.db.conn:
            cursor = self.db.execute(
                "UPDATE files SET uploader = ?, context = ? WHERE path = ? "
                "AND (uploader IS NOT ? OR context IS NOT ?)",
                [uploader, context, text_path(path), uploader, context],
            )
        return cursor.rowcount > 0

    def file_sha256(self, path: str) -> str | None:
        rows = list(self.db.query("SELECT sha256 FROM files WHERE path = ?", [text_path(path)]))
        return rows[0]["sha256"] if rows else None

    def file_actions(self, path: str) -> list[str]:
        """The actions decided for the people seen in a recorded file."""
        return [row["action"] for row in self.db.query("SELECT action FROM decisions WHERE path = ?", [text_path(path)])]

    def media_faces(self, sha256s: list[str] | None = None):
        """``(sha256, [face ids], embeddings array)`` for each image (each video frame) with faces."""
        where, params = "", []
        if sha256s is not None:
            where = f"WHERE sha256 IN ({','.join('?' * len(sha256s))})"
            params = list(sha256s)
        current, ids, vectors = None, [], []
        query = f"SELECT id, sha256, frame_time, embedding FROM faces {where} ORDER BY sha256, frame_time, seq"
        for row in self.db.query(query, params):
            key = (row["sha256"], row["frame_time"])
            if key != current:
                if ids:
                    yield current[0], ids, np.stack(vectors)
                current, ids, vectors = key, [], []
            ids.append(row["id"])
            vectors.append(from_blob(row["embedding"]))
        if ids:
            yield current[0], ids, np.stack(vectors)


def _person(row: dict) -> Person:
    return Person(
        id=row["id"],
        name=row["name"],
        public_figure=bool(row["public_figure"]),
        accounts=json.loads(row["accounts"] or "[]"),
        references=row.get("refs", 0),
    )


def _create_private(path: Path) -> None:
    """Create the database file readable and writable by its owner only.

    SQLite gives its -wal and -shm files the same permissions as the database.
    """
    if path.exists():
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
        return
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
    os.close(fd)
