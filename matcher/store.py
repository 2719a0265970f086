"""The embedded store: one SQLite file, through sqlite-utils.

Observations (media, faces with their embeddings, and the matches found
between faces and enrolled people) are kept apart from decisions, so that a
change of consent, enrollment or policy re-decides from stored facts without
decoding any media again. Photos are never stored: only embeddings and hashes.

Each scanned file is recorded in one transaction, so a scan killed at any
moment leaves either the whole result of a file or nothing of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import sqlite_utils

# 2: one decision per (file, person) instead of per face (a video yields one
# decision per person seen in it). Decisions are derived data, so moving from 1
# drops them and they are re-made from the stored faces and matches.
SCHEMA_VERSION = 2

FACE_BLOCK = 65_536  # embeddings per packed block (16 MiB of float16)


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
    opted_out: bool = True  # False while the opt-out is paused (opt-in)


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        _create_private(self.path)
        try:
            # One Store is used by one caller at a time, but not always from one thread:
            # the web app opens it in one worker thread and uses it in another.
            self.db = sqlite_utils.Database(sqlite3.connect(str(self.path), check_same_thread=False))
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
        with self.write():  # BEGIN IMMEDIATE: two processes opening a new file create it in turn
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
                },
                pk="path",
                if_not_exists=True,
            )
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
            # Columns added after the tables first shipped: added in place.
            for table, column, kind in (
                ("files", "last_scan", int),
                ("people", "opted_out", int),
                ("files", "scanned_in", int),
                ("media", "embeddings_dropped", int),
                ("media", "gallery_version", int),
                ("decisions", "item", str),
                ("people", "access_code_sha256", str),
            ):
                if column not in db[table].columns_dict:
                    db[table].add_column(column, kind)
            db["decisions"].create_index(["item"], if_not_exists=True)
            db["people"].create_index(["access_code_sha256"], unique=True, if_not_exists=True)
            # Web access: reviewer tokens and API keys (kind 'reviewer' / 'apikey'), and
            # signed-in browser sessions. Only SHA-256 hashes of the secrets are kept.
            db["credentials"].create({"kind": str, "name": str, "token_sha256": str, "created_at": str},
                                     pk=("kind", "name"), if_not_exists=True)
            db["credentials"].create_index(["token_sha256"], unique=True, if_not_exists=True)
            db["sessions"].create({"token_sha256": str, "kind": str, "subject": str, "expires_at": str},
                                  pk="token_sha256", if_not_exists=True)
            # The flood guard: a person who matched too many media in one scan.
            db["floods"].create({"person_id": int, "scan": int, "media": int, "at": str},
                                pk=("person_id", "scan"), if_not_exists=True)
            # A reviewer's verdict on one item (a person in a file), valid while
            # the facts it was given on (facts_sha256) hold.
            db["reviews"].create(
                {"path": str, "person_id": int, "verdict": str, "reviewer": str, "note": str,
                 "facts_sha256": str, "decided_at": str},
                pk=("path", "person_id"),
                if_not_exists=True,
            )
            # Stored embeddings packed for retroactive matching (see face_blocks()).
            db["face_blocks"].create(
                {"first_face_id": int, "last_face_id": int, "count": int, "face_ids": bytes, "embeddings": bytes},
                pk="first_face_id",
                if_not_exists=True,
            )
            db["audit"].create(
                {"id": int, "at": str, "actor": str, "event": str, "subject": str, "old": str, "new": str,
                 "rule": str, "policy_sha256": str, "detail": str, "prev_hash": str, "hash": str},
                pk="id",
                if_not_exists=True,
            )
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
            )

    @contextlib.contextmanager
    def write(self):
        """One write transaction, its lock taken at the start (BEGIN IMMEDIATE), so
        what is read inside it (the audit chain's last hash) cannot change
        before it is written."""
        conn = self.db.conn
        if conn.in_transaction:  # nested: part of the caller's transaction
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()
            raise
        conn.commit()

    def get_meta(self, key: str) -> str | None:
        rows = list(self.db.query("SELECT value FROM meta WHERE key = ?", [key]))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [key, value])

    # -- people and references -------------------------------------------------

    def person(self, name: str) -> Person | None:
        found = self._people("WHERE name = ?", [name])
        return found[0] if found else None

    def person_by_id(self, person_id: int) -> Person | None:
        found = self._people("WHERE id = ?", [person_id])
        return found[0] if found else None

    def people(self) -> list[Person]:
        return self._people("ORDER BY name", [])

    def _people(self, where: str, params: list) -> list[Person]:
        return [
            _person(row)
            for row in self.db.query(
                "SELECT p.*, (SELECT count(*) FROM reference_faces r WHERE r.person_id = p.id) AS refs "
                f"FROM people p {where}",
                params,
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
        with self.write():
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

    def set_opted_out(self, person_id: int, opted_out: bool) -> bool:
        """Pause (False) or resume (True) a person's opt-out; True when it changed."""
        with self.write():
            cursor = self.db.execute(
                "UPDATE people SET opted_out = ? WHERE id = ? AND coalesce(opted_out, 1) != ?",
                [int(opted_out), person_id, int(opted_out)],
            )
        return cursor.rowcount > 0

    def erase_person(self, person_id: int) -> tuple[dict[str, int], list[str]]:
        """Delete everything about a person: references, consents, reviews, the faces
        of scanned media that matched them (their embeddings are theirs too), those
        matches and the decisions. Returns what was deleted, by kind, and the media
        affected. The caller then calls :meth:`compact` so that no deleted byte
        stays in the file."""
        counts = {}
        with self.write():
            matched = "SELECT face_id FROM matches WHERE person_id = ?"
            affected = [r["sha256"] for r in self.db.query(
                f"SELECT DISTINCT sha256 FROM faces WHERE id IN ({matched})", [person_id])]
            counts["decisions"] = self.db.execute("DELETE FROM decisions WHERE person_id = ?", [person_id]).rowcount
            counts["reviews"] = self.db.execute("DELETE FROM reviews WHERE person_id = ?", [person_id]).rowcount
            face_ids = [r["face_id"] for r in self.db.query(matched, [person_id])]
            counts["matched_faces"] = len(face_ids)
            if face_ids:
                self._unpack_from(min(face_ids))
            self.db.execute("DELETE FROM matches WHERE person_id = ?", [person_id])
            for start in range(0, len(face_ids), 500):
                chunk = face_ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM decisions WHERE face_id IN ({marks})", chunk)
                self.db.execute(f"DELETE FROM faces WHERE id IN ({marks})", chunk)
            counts["consents"] = self.db.execute("DELETE FROM consents WHERE person_id = ?", [person_id]).rowcount
            counts["references"] = self.db.execute(
                "DELETE FROM reference_faces WHERE person_id = ?", [person_id]).rowcount
            self.db.execute("DELETE FROM floods WHERE person_id = ?", [person_id])
            self.db.execute("DELETE FROM sessions WHERE kind = 'person' AND subject = ?", [str(person_id)])
            self.db.execute("DELETE FROM people WHERE id = ?", [person_id])
        counts["media_affected"] = len(affected)
        return counts, affected

    def compact(self) -> None:
        """Rewrite the file without free pages, and empty the write-ahead log:
        deleted rows then survive nowhere in the database's files."""
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- reviews and the flood guard -----------------------------------------------

    def set_review(self, path: str, person_id: int, verdict: str, reviewer: str, note: str | None,
                   facts_sha256: str) -> None:
        with self.write():
            self.db.execute(
                "INSERT OR REPLACE INTO reviews (path, person_id, verdict, reviewer, note, facts_sha256, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [path, person_id, verdict, reviewer, note, facts_sha256, now()],
            )

    def reviews(self) -> dict[tuple[str, int], dict]:
        return {(r["path"], r["person_id"]): r for r in self.db.query("SELECT * FROM reviews")}

    def add_flood(self, person_id: int, scan: int, media: int) -> None:
        with self.write():
            self.db.execute("INSERT OR IGNORE INTO floods (person_id, scan, media, at) VALUES (?, ?, ?, ?)",
                            [person_id, scan, media, now()])

    def floods(self) -> set[tuple[int, int]]:
        return {(r["person_id"], r["scan"]) for r in self.db.query("SELECT person_id, scan FROM floods")}

    # -- consents --------------------------------------------------------------

    def add_consent(self, person_id: int, media_sha256: str | None, uploader: str | None, until: str | None) -> int:
        with self.write():
            cursor = self.db.execute(
                "INSERT INTO consents (person_id, media_sha256, uploader, until, granted_at) VALUES (?, ?, ?, ?, ?)",
                [person_id, media_sha256, uploader, until, now()],
            )
        return cursor.lastrowid

    def revoke_consent(self, consent_id: int, person_id: int | None = None) -> int | None:
        """End an active consent (only one of ``person_id``'s when given); the person it was of,
        or None when there is no such active consent."""
        with self.write():
            rows = list(self.db.query(
                "SELECT person_id FROM consents WHERE id = ? AND revoked_at IS NULL AND coalesce(?, person_id) = person_id",
                [consent_id, person_id]))
            if not rows:
                return None
            self.db.execute("UPDATE consents SET revoked_at = ? WHERE id = ?", [now(), consent_id])
        return rows[0]["person_id"]

    def consents_of(self, person_id: int) -> list[dict]:
        return list(self.db.query("SELECT * FROM consents WHERE person_id = ? ORDER BY id", [person_id]))

    def active_consents(self) -> list[dict]:
        return list(self.db.query("SELECT * FROM consents WHERE revoked_at IS NULL"))

    # -- web access ------------------------------------------------------------
    # Secrets are random (100 bits and more), so a plain SHA-256 is enough to keep
    # a stolen database from giving them away; a slow password hash is for
    # secrets people choose.

    def set_access_code(self, person_id: int) -> str:
        """A new private access code for the person (the old one stops working); shown once, kept as a hash."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(20))
        with self.write():
            self.db.execute("UPDATE people SET access_code_sha256 = ? WHERE id = ?", [_secret_sha256(code), person_id])
        return "-".join(code[i:i + 5] for i in range(0, 20, 5))

    def person_by_access_code(self, code: str) -> Person | None:
        normalised = "".join(ch for ch in code.upper() if ch.isalnum())
        found = self._people("WHERE access_code_sha256 = ?", [_secret_sha256(normalised)])
        return found[0] if found else None

    def add_credential(self, kind: str, name: str) -> str:
        """A new token for reviewer or API client ``name`` (replacing theirs); shown once, kept as a hash."""
        token = secrets.token_urlsafe(24)
        with self.write():
            self.db.execute(
                "INSERT OR REPLACE INTO credentials (kind, name, token_sha256, created_at) VALUES (?, ?, ?, ?)",
                [kind, name, _secret_sha256(token), now()])
            self.db.execute("DELETE FROM sessions WHERE kind = ? AND subject = ?", [kind, name])
        return token

    def credential_name(self, kind: str, token: str) -> str | None:
        rows = list(self.db.query("SELECT name FROM credentials WHERE kind = ? AND token_sha256 = ?",
                                  [kind, _secret_sha256(token)]))
        return rows[0]["name"] if rows else None

    def credentials(self, kind: str) -> list[dict]:
        return list(self.db.query("SELECT name, created_at FROM credentials WHERE kind = ? ORDER BY name", [kind]))

    def remove_credential(self, kind: str, name: str) -> bool:
        with self.write():
            removed = self.db.execute("DELETE FROM credentials WHERE kind = ? AND name = ?", [kind, name]).rowcount
            self.db.execute("DELETE FROM sessions WHERE kind = ? AND subject = ?", [kind, name])
        return removed > 0

    def start_session(self, kind: str, subject: str, seconds: int) -> str:
        token = secrets.token_urlsafe(32)
        expires = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        with self.write():
            self.db.execute("DELETE FROM sessions WHERE expires_at < ?", [now()])
            self.db.execute("INSERT INTO sessions (token_sha256, kind, subject, expires_at) VALUES (?, ?, ?, ?)",
                            [_secret_sha256(token), kind, subject, expires.isoformat(timespec="seconds")])
        return token

    def session(self, token: str) -> tuple[str, str] | None:
        """``(kind, subject)`` of a signed-in session that has not expired, or None."""
        rows = list(self.db.query("SELECT kind, subject FROM sessions WHERE token_sha256 = ? AND expires_at >= ?",
                                  [_secret_sha256(token), now()]))
        return (rows[0]["kind"], rows[0]["subject"]) if rows else None

    def end_session(self, token: str) -> None:
        with self.write():
            self.db.execute("DELETE FROM sessions WHERE token_sha256 = ?", [_secret_sha256(token)])

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
        with self.write():
            number = int(self.get_meta("last_scan") or 0) + 1
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_scan', ?)", [str(number)])
        return number

    def mark_seen(self, path: str, scan: int) -> None:
        with self.write():
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
        with self.write():
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
                first = self.db.execute(f"SELECT min(id) FROM faces WHERE sha256 IN ({orphans})").fetchone()[0]
                if first is not None:
                    self._unpack_from(first)
                self.db.execute(
                    f"DELETE FROM matches WHERE face_id IN (SELECT id FROM faces WHERE sha256 IN ({orphans}))"
                )
                self.db.execute(f"DELETE FROM faces WHERE sha256 IN ({orphans})")
                self.db.execute(f"DELETE FROM media WHERE sha256 IN ({orphans})")
        return dropped

    def record(self, observation, metadata: dict | None, scan: int | None = None, replace: bool = False) -> None:
        """Record one scanned file: its path, and the media's faces if they are new.

        A face whose embedding is None is stored without it (no-retention
        setting). ``replace``: the media was read again (``scan --rescan``), its
        earlier faces are replaced. One transaction, so an interrupted scan
        never leaves half a file.
        """
        obs = observation
        metadata = metadata or {}
        context = json.dumps(sorted(metadata.get("context", [])))
        with self.write():
            if replace and obs.sha256 is not None and not obs.error:
                self._drop_media_faces(obs.sha256)
                self.db.execute("DELETE FROM media WHERE sha256 = ?", [obs.sha256])
            # OR IGNORE: another scan may have recorded the same content meanwhile;
            # then its faces stand and these are not added a second time.
            cursor = None
            if obs.sha256 is not None:
                dropped = sum(1 for face in obs.faces if face.embedding is None)
                cursor = self.db.execute(
                    "INSERT OR IGNORE INTO media (sha256, kind, format, status, error, width, height, engine, "
                    "scanned_at, embeddings_dropped, gallery_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [obs.sha256, obs.kind, obs.format, "error" if obs.media_error else "ok", obs.media_error,
                     obs.width, obs.height, obs.engine, now(), dropped, self.gallery_version()],
                )
            if cursor is not None and cursor.rowcount == 1:
                self.db.conn.executemany(
                    "INSERT INTO faces (sha256, seq, frame_time, top, right, bottom, left, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        [obs.sha256, seq, face.frame_time, face.box.top, face.box.right, face.box.bottom,
                         face.box.left, None if face.embedding is None else to_blob(face.embedding)]
                        for seq, face in enumerate(obs.faces)
                    ],
                )
            self.db.execute(
                # last_scan never goes back: a concurrent scan with a later number
                # may have seen this file already, and must not drop it as unseen.
                # scanned_in: the scan that first recorded this content at this path.
                "INSERT INTO files (path, sha256, size, mtime_ns, status, error, uploader, context, seen_at, "
                "last_scan, scanned_in) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET "
                "sha256 = excluded.sha256, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "status = excluded.status, error = excluded.error, uploader = excluded.uploader, "
                "context = excluded.context, seen_at = excluded.seen_at, "
                "last_scan = max(coalesce(files.last_scan, 0), coalesce(excluded.last_scan, 0)), "
                "scanned_in = CASE WHEN files.sha256 IS excluded.sha256 THEN files.scanned_in "
                "ELSE excluded.scanned_in END",
                [text_path(obs.path), obs.sha256, obs.size, obs.mtime_ns, "error" if obs.file_error else "ok",
                 obs.file_error, metadata.get("uploader"), context, now(), scan, scan],
            )

    def _drop_media_faces(self, sha256: str) -> None:
        faces = "SELECT id FROM faces WHERE sha256 = ?"
        first = self.db.execute("SELECT min(id) FROM faces WHERE sha256 = ?", [sha256]).fetchone()[0]
        if first is not None:
            self._unpack_from(first)
        self.db.execute(f"DELETE FROM matches WHERE face_id IN ({faces})", [sha256])
        self.db.execute(f"DELETE FROM decisions WHERE face_id IN ({faces})", [sha256])
        self.db.execute("DELETE FROM faces WHERE sha256 = ?", [sha256])

    # -- retention -------------------------------------------------------------

    def gallery_version(self) -> int:
        """Counts changes of the enrolled references: media recorded under an older
        version, without their unmatched embeddings, were not checked against the newer ones."""
        return int(self.get_meta("gallery_version") or 0)

    def bump_gallery_version(self) -> None:
        with self.write():
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES ('gallery_version', '1') ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )

    def files_needing_rescan(self, path: str | None = None) -> list[str]:
        """Files (or just ``path``, if it does) whose media dropped unmatched embeddings
        before the latest enrollment."""
        where, params = "", [self.gallery_version()]
        if path is not None:
            where, params = "AND f.path = ?", [*params, text_path(path)]
        return [
            row["path"]
            for row in self.db.query(
                "SELECT f.path FROM files f JOIN media m ON m.sha256 = f.sha256 "
                f"WHERE m.embeddings_dropped > 0 AND coalesce(m.gallery_version, 0) < ? {where} ORDER BY f.path",
                params,
            )
        ]

    def update_file_metadata(self, path: str, metadata: dict) -> bool:
        """Apply manifest metadata to an already recorded file; True when it changed."""
        uploader = metadata.get("uploader")
        context = json.dumps(sorted(metadata.get("context", [])))
        with self.write():
            cursor = self.db.execute(
                "UPDATE files SET uploader = ?, context = ? WHERE path = ? "
                "AND (uploader IS NOT ? OR context IS NOT ?)",
                [uploader, context, text_path(path), uploader, context],
            )
        return cursor.rowcount > 0

    def file_sha256(self, path: str) -> str | None:
        rows = list(self.db.query("SELECT sha256 FROM files WHERE path = ?", [text_path(path)]))
        return rows[0]["sha256"] if rows else None

    def last_fact_change(self) -> int:
        """The audit id of the latest change of the facts decisions rest on (enrollment,
        consent, opt-in/out, erasure, review): 0 when none."""
        row = self.db.execute(
            "SELECT max(id) FROM audit WHERE event IN "
            "('enroll', 'consent-grant', 'consent-revoke', 'opt-in', 'opt-out', 'erasure', 'review')"
        ).fetchone()
        return row[0] or 0

    def media_recorded_in_scan(self, scan: int) -> list[str]:
        return [row["sha256"] for row in self.db.query(
            "SELECT DISTINCT sha256 FROM files WHERE scanned_in = ? AND sha256 IS NOT NULL", [scan])]

    def media_matched_in_scan(self, person_id: int, scan: int) -> list[str]:
        return [row["sha256"] for row in self.db.query(
            "SELECT DISTINCT f.sha256 FROM decisions d JOIN files f ON f.path = d.path "
            "WHERE d.person_id = ? AND f.scanned_in = ?", [person_id, scan])]

    def file_decisions(self, path: str) -> dict[int, str]:
        """``{person id: action}`` for the people seen in a recorded file."""
        return {row["person_id"]: row["action"] for row in self.db.query(
            "SELECT person_id, action FROM decisions WHERE path = ?", [text_path(path)])}

    def face_blocks(self):
        """``(face ids, float16 embeddings)`` of every stored face with an embedding, in blocks.

        Reading a million embeddings row by row takes SQLite 1.3-2 s; packed in
        blocks of up to 65,536 (float16: plenty to find candidates, which are
        then re-matched exactly) they read in a fraction of that. Faces added
        since the last packing are packed first.
        """
        self.pack_face_blocks()
        for row in self.db.conn.execute("SELECT face_ids, embeddings FROM face_blocks ORDER BY first_face_id"):
            ids = np.frombuffer(row[0], dtype="<i8")
            yield ids, np.frombuffer(row[1], dtype="<f2").reshape(len(ids), -1)

    def pack_face_blocks(self) -> None:
        with self.write():
            last = self.db.execute("SELECT max(last_face_id) FROM face_blocks").fetchone()[0] or 0
            tail = list(self.db.query(
                "SELECT * FROM face_blocks WHERE last_face_id = ? AND count < ?", [last, FACE_BLOCK]))
            ids, blobs = [], []
            if tail:  # top up the last, partly filled block
                ids.append(np.frombuffer(tail[0]["face_ids"], dtype="<i8"))
                blobs.append(tail[0]["embeddings"])
                self.db.execute("DELETE FROM face_blocks WHERE first_face_id = ?", [tail[0]["first_face_id"]])
            new_ids, new_vectors = [], []
            for face_id, blob in self.db.conn.execute(
                "SELECT id, embedding FROM faces WHERE id > ? AND embedding IS NOT NULL ORDER BY id", [last]
            ):
                new_ids.append(face_id)
                new_vectors.append(blob)
            if not new_ids and not tail:
                return
            if new_ids:
                ids.append(np.array(new_ids, dtype="<i8"))
                vectors = np.frombuffer(b"".join(new_vectors), dtype="<f4").astype("<f2")
                blobs.append(vectors.tobytes())
            all_ids = np.concatenate(ids)
            packed = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(all_ids), -1)
            for start in range(0, len(all_ids), FACE_BLOCK):
                block_ids = all_ids[start : start + FACE_BLOCK]
                self.db.execute(
                    "INSERT INTO face_blocks (first_face_id, last_face_id, count, face_ids, embeddings) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [int(block_ids[0]), int(block_ids[-1]), len(block_ids), block_ids.tobytes(),
                     packed[start : start + FACE_BLOCK].tobytes()],
                )

    def _unpack_from(self, face_id: int) -> None:
        """Faces from ``face_id`` on changed: their packed blocks are dropped (re-packed on next use)."""
        self.db.execute("DELETE FROM face_blocks WHERE last_face_id >= ?", [face_id])

    def media_of_faces(self, face_ids: list[int]) -> list[str]:
        found: set[str] = set()
        for start in range(0, len(face_ids), 500):
            chunk = face_ids[start : start + 500]
            found.update(r["sha256"] for r in self.db.query(
                f"SELECT DISTINCT sha256 FROM faces WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return sorted(found)

    def media_faces(self, sha256s: list[str] | None = None):
        """``(sha256, [face ids], embeddings array)`` for each image (each video frame) with faces."""
        where, params = "WHERE embedding IS NOT NULL", []
        if sha256s is not None:
            where += f" AND sha256 IN ({','.join('?' * len(sha256s))})"
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
        opted_out=row.get("opted_out") != 0,
    )


# Access codes are read and typed by people: no I, L, O or U (Crockford's base32).
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _create_private(path: Path) -> None:
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
