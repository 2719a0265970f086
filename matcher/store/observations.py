"""What scans observed: files, the media (content) they hold, and the faces found in them.

Each scanned file is recorded in one transaction, so a scan killed at any
moment leaves either the whole result of a file or nothing of it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from matcher.model import Observation, Upload
from matcher.store.core import Database, from_blob, marks, text_path, to_blob
from matcher.store.decisions import face_measures

# Stored faces with an embedding that match no enrolled person.
_UNMATCHED = "FROM faces f LEFT JOIN matches m ON m.face_id = f.id WHERE f.embedding IS NOT NULL AND m.person_id IS NULL"
FACE_BLOCK = 65_536  # embeddings per packed block (16 MiB of float16)


@dataclass
class FrameFaces:
    """The faces of one image (one video frame): ids, embeddings (k, d), (width, sharpness, brightness, frontal) each."""

    sha256: str
    ids: list[int] = field(default_factory=list)
    vectors: list = field(default_factory=list)
    qualities: list[tuple[int, float | None, float | None, bool, float | None]] = field(default_factory=list)
    embeddings: np.ndarray | None = None

    def done(self) -> "FrameFaces":
        self.embeddings = np.stack(self.vectors)
        return self


class Observations:
    def __init__(self, database: Database):
        self.db = database

    # -- files and media ---------------------------------------------------------------

    def file_unchanged(self, path: str, size: int, mtime_ns: int) -> bool:
        """True when this path was recorded with the same size and time, and its scan is complete."""
        rows = list(self.db.query(
            "SELECT f.sha256, f.status, m.sha256 AS media FROM files f LEFT JOIN media m ON m.sha256 = f.sha256 "
            "WHERE f.path = ? AND f.size = ? AND f.mtime_ns = ?", [text_path(path), size, mtime_ns]))
        return bool(rows) and (rows[0]["media"] is not None or rows[0]["status"] == "error")

    def recorded_media(self, sha256s: list[str]) -> set[str]:
        """Those of ``sha256s`` whose media are recorded."""
        return {row["sha256"] for row in self.db.query_in("SELECT sha256 FROM media WHERE sha256 IN ({})", sha256s)}

    def file_sha256(self, path: str) -> str | None:
        return self.db.one("SELECT sha256 FROM files WHERE path = ?", [text_path(path)])

    def begin_scan(self) -> int:
        """A new scan number: files seen by the scan are stamped with it."""
        return self.db.increment_meta("last_scan")

    def mark_seen(self, path: str, scan: int) -> None:
        with self.db.write():
            self.db.execute(f"UPDATE files SET last_scan = {self.db.greatest}(coalesce(last_scan, 0), ?) WHERE path = ?",
                            [scan, text_path(path)])

    def update_upload(self, path: str, upload: Upload) -> bool:
        """Apply manifest metadata to an already recorded file; True when it changed."""
        context = json.dumps(sorted(upload.context))
        with self.db.write():
            cursor = self.db.execute(
                f"UPDATE files SET uploader = ?, context = ? WHERE path = ? "
                f"AND (uploader {self.db.is_not} ? OR context {self.db.is_not} ?)",
                [upload.uploader, context, text_path(path), upload.uploader, context])
        return cursor.rowcount > 0

    def record(self, obs: Observation, upload: Upload | None, scan: int | None, replace: bool = False) -> None:
        """Record one scanned file: its path, and the media's faces if they are new.

        A face whose embedding is None is stored without it (no-retention
        setting). ``replace``: the media was read again (``scan --rescan``), its
        earlier faces are replaced. One transaction, so an interrupted scan
        never leaves half a file.
        """
        upload = upload or Upload()
        with self.db.write():
            if replace and obs.sha256 is not None and not obs.error:
                self._drop_media_faces(obs.sha256)
                self.db.execute("DELETE FROM media WHERE sha256 = ?", [obs.sha256])
            # DO NOTHING: another scan may have recorded the same content meanwhile;
            # then its faces stand and these are not added a second time.
            new_media = False
            if obs.sha256 is not None:
                dropped = sum(1 for face in obs.faces if face.embedding is None)
                new_media = self.db.execute(
                    "INSERT INTO media (sha256, kind, format, status, error, width, height, engine, scanned_at, "
                    "embeddings_dropped, gallery_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key = 'gallery_version'), 0)) "
                    "ON CONFLICT DO NOTHING",
                    [obs.sha256, obs.kind, obs.format, "error" if obs.media_error else "ok", obs.media_error,
                     obs.width, obs.height, obs.engine, self.db.now(), dropped],
                ).rowcount == 1
            if new_media:
                # Shared: writers of faces run side by side, but not while blocks are packed
                # (a face id handed out must be committed before the packing reads past it).
                self.db.lock("faces", shared=True)
                self.db.executemany(
                    'INSERT INTO faces (sha256, seq, frame_time, top, "right", bottom, "left", embedding, quality) '
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [[obs.sha256, seq, face.frame_time, face.box.top, face.box.right, face.box.bottom, face.box.left,
                      None if face.embedding is None else to_blob(face.embedding),
                      None if face.quality is None else json.dumps(face.quality.as_dict())]
                     for seq, face in enumerate(obs.faces)],
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
                f"last_scan = {self.db.greatest}(coalesce(files.last_scan, 0), coalesce(excluded.last_scan, 0)), "
                f"scanned_in = CASE WHEN files.sha256 {self.db.is_} excluded.sha256 THEN files.scanned_in "
                "ELSE excluded.scanned_in END",
                [text_path(obs.path), obs.sha256, obs.size, obs.mtime_ns, "error" if obs.file_error else "ok",
                 obs.file_error, upload.uploader, json.dumps(sorted(upload.context)), self.db.now(), scan, scan],
            )

    def _drop_media_faces(self, sha256: str) -> None:
        faces = "SELECT id FROM faces WHERE sha256 = ?"
        first = self.db.one("SELECT min(id) FROM faces WHERE sha256 = ?", [sha256])
        if first is not None:
            self._unpack_from(first)
        self.db.execute(f"DELETE FROM matches WHERE face_id IN ({faces})", [sha256])
        self.db.execute(f"DELETE FROM decisions WHERE face_id IN ({faces})", [sha256])
        self.db.execute("DELETE FROM faces WHERE sha256 = ?", [sha256])

    def forget_unseen(self, roots: list[str], scan: int) -> int:
        """Drop the files below ``roots`` that scan number ``scan`` did not see (deleted or moved away).

        Media that no file shows any more are dropped with their faces: facts
        about media no longer on the platform are not kept. Returns the number
        of files dropped.
        """
        dropped = 0
        with self.db.write():
            for root in roots:
                root = text_path(root)
                prefix = root.rstrip(os.sep) + os.sep
                # substr, not LIKE: '%' and '_' are ordinary characters in folder names.
                where = "(path = ? OR substr(path, 1, CAST(? AS INTEGER)) = ?) AND (last_scan IS NULL OR last_scan < ?)"
                params = [root, len(prefix), prefix, scan]
                self.db.execute(f"DELETE FROM decisions WHERE path IN (SELECT path FROM files WHERE {where})", params)
                dropped += self.db.execute(f"DELETE FROM files WHERE {where}", params).rowcount
            if dropped:
                orphans = "SELECT sha256 FROM media WHERE sha256 NOT IN (SELECT sha256 FROM files WHERE sha256 IS NOT NULL)"
                first = self.db.one(f"SELECT min(id) FROM faces WHERE sha256 IN ({orphans})")
                if first is not None:
                    self._unpack_from(first)
                self.db.execute(f"DELETE FROM matches WHERE face_id IN (SELECT id FROM faces WHERE sha256 IN ({orphans}))")
                self.db.execute(f"DELETE FROM faces WHERE sha256 IN ({orphans})")
                self.db.execute(f"DELETE FROM media WHERE sha256 IN ({orphans})")
        return dropped

    # -- retention ------------------------------------------------------------------------

    def gallery_version(self) -> int:
        """Counts changes of the enrolled references: media recorded under an older
        version, without their unmatched embeddings, were not checked against the newer ones."""
        return int(self.db.get_meta("gallery_version") or 0)

    def bump_gallery_version(self) -> None:
        self.db.increment_meta("gallery_version")

    def files_needing_rescan(self, path: str | None = None) -> list[str]:
        """Files (or just ``path``, if it does) whose media dropped unmatched embeddings
        before the latest enrollment."""
        where, params = "", [self.gallery_version()]
        if path is not None:
            where, params = "AND f.path = ?", [*params, text_path(path)]
        return [row["path"] for row in self.db.query(
            "SELECT f.path FROM files f JOIN media m ON m.sha256 = f.sha256 "
            f"WHERE m.embeddings_dropped > 0 AND coalesce(m.gallery_version, 0) < ? {where} ORDER BY f.path", params)]

    # -- faces -----------------------------------------------------------------------------

    def media_faces(self, sha256s: list[str] | None = None) -> Iterator[FrameFaces]:
        """The faces with embeddings of each image (each video frame)."""
        where, params = "WHERE embedding IS NOT NULL", []
        if sha256s is not None:
            where += f" AND sha256 IN ({marks(sha256s)})"
            params = list(sha256s)
        current, frame = None, None
        query = (f'SELECT id, sha256, frame_time, embedding, quality, "left", "right" FROM faces {where} '
                 "ORDER BY sha256, frame_time, seq")
        for row in self.db.query(query, params):
            key = (row["sha256"], row["frame_time"])
            if key != current:
                if frame is not None:
                    yield frame.done()
                current, frame = key, FrameFaces(row["sha256"])
            frame.ids.append(row["id"])
            frame.vectors.append(from_blob(row["embedding"]))
            frame.qualities.append(face_measures(row["quality"], row["left"], row["right"]))
        if frame is not None:
            yield frame.done()

    def embeddings_of(self, face_ids: list[int]) -> dict[int, np.ndarray]:
        """``{face id: embedding}`` of those of ``face_ids`` that kept one."""
        return {row["id"]: from_blob(row["embedding"]) for row in self.db.query_in(
            "SELECT id, embedding FROM faces WHERE embedding IS NOT NULL AND id IN ({})", face_ids)}

    def media_of_faces(self, face_ids: list[int]) -> list[str]:
        return sorted({row["sha256"] for row in self.db.query_in("SELECT DISTINCT sha256 FROM faces WHERE id IN ({})",
                                                                  face_ids)})

    def delete_faces(self, face_ids: list[int]) -> None:
        """Delete faces (and what was decided on them): part of an erasure, inside its transaction."""
        if face_ids:
            self._unpack_from(min(face_ids))
        self.db.delete_in("decisions", "face_id", face_ids)
        self.db.delete_in("faces", "id", face_ids)

    def unmatched_sample(self, limit: int, count: int | None = None) -> np.ndarray:
        """Embeddings of up to ``limit`` stored faces that match no one, spread evenly over all of
        them (every n-th by id): the background each person's thresholds are measured against.
        ``count``: :meth:`unmatched_count`, when the caller has it (it reads every face)."""
        count = self.unmatched_count() if count is None else count
        step = max(1, -(-count // max(1, limit)))  # rounded up: the sample reaches the newest
        # Every step-th id, in integer arithmetic that every SQL dialect reads alike (no % operator).
        rows = self.db.query(f"SELECT f.embedding {_UNMATCHED} AND f.id - (f.id / ?) * ? = 0 ORDER BY f.id LIMIT ?",
                             [step, step, limit])
        vectors = [from_blob(row["embedding"]) for row in rows]
        return np.stack(vectors) if vectors else np.empty((0, 128), np.float32)

    def unmatched_count(self) -> int:
        return self.db.one(f"SELECT count(*) {_UNMATCHED}") or 0

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(face ids, float16 embeddings)`` of every stored face with an embedding, in blocks.

        Reading a million embeddings row by row takes SQLite 1.3-2 s; packed in
        blocks of up to 65,536 (float16: plenty to find candidates, which are
        then re-matched exactly) they read in a fraction of that. Faces added
        since the last packing are packed first.
        """
        self.pack_blocks()
        # Streamed, one block at a time, from one snapshot: 10 million faces are 2.5 GB.
        for face_ids, embeddings in self.db.stream("SELECT face_ids, embeddings FROM face_blocks ORDER BY first_face_id"):
            ids = np.frombuffer(face_ids, dtype="<i8")
            yield ids, np.frombuffer(embeddings, dtype="<f2").reshape(len(ids), -1)

    def pack_blocks(self) -> None:
        """Pack the faces stored since the last packing, one block at a time (memory stays flat)."""
        with self.db.write():
            self.db.lock("faces")  # alone: every face id below those it packs is committed
            last = self.db.one("SELECT max(last_face_id) FROM face_blocks") or 0
            tail = list(self.db.query("SELECT * FROM face_blocks WHERE last_face_id = ? AND count < ?",
                                      [last, FACE_BLOCK]))
            ids = np.zeros(0, dtype="<i8")
            blob = b""
            if tail:  # top up the last, partly filled block
                ids, blob = np.frombuffer(tail[0]["face_ids"], dtype="<i8"), tail[0]["embeddings"]
            while True:
                rows = self.db.execute("SELECT id, embedding FROM faces WHERE id > ? AND embedding IS NOT NULL "
                                       "ORDER BY id LIMIT ?", [last, FACE_BLOCK - len(ids)]).fetchall()
                if not rows:
                    return
                if len(ids):
                    self.db.execute("DELETE FROM face_blocks WHERE first_face_id = ?", [int(ids[0])])
                ids = np.concatenate([ids, np.array([row[0] for row in rows], dtype="<i8")])
                blob += np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").astype("<f2").tobytes()
                self.db.execute(
                    "INSERT INTO face_blocks (first_face_id, last_face_id, count, face_ids, embeddings) "
                    "VALUES (?, ?, ?, ?, ?)", [int(ids[0]), int(ids[-1]), len(ids), ids.tobytes(), blob])
                last = int(ids[-1])
                if len(ids) == FACE_BLOCK:
                    ids, blob = np.zeros(0, dtype="<i8"), b""

    def _unpack_from(self, face_id: int) -> None:
        """Faces from ``face_id`` on changed: their packed blocks are dropped (re-packed on next use)."""
        self.db.lock("faces")  # not while another writer packs them
        self.db.execute("DELETE FROM face_blocks WHERE last_face_id >= ?", [face_id])
