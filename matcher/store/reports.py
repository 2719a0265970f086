"""What the report reads: recorded files with their media, and each file's faces with matches and decisions."""

from __future__ import annotations

import json
from typing import Iterator

from matcher.model import Box, FaceFacts, FileFacts
from matcher.store.core import Database, marks


class Reports:
    def __init__(self, database: Database):
        self.db = database

    def files(self, paths: list[str] | None = None) -> Iterator[FileFacts]:
        """Recorded files in path order (only ``paths``, when given)."""
        where, params = "", []
        if paths is not None:
            where, params = f"WHERE f.path IN ({marks(paths)})", list(paths)
        for row in self.db.query(
            "SELECT f.path, f.sha256, f.error AS file_error, f.uploader, f.context, m.kind, m.format, "
            "m.error AS media_error, m.width, m.height "
            f"FROM files f LEFT JOIN media m ON m.sha256 = f.sha256 {where} ORDER BY f.path",
            params,
        ):
            yield FileFacts(**{**row, "context": tuple(json.loads(row["context"] or "[]"))})

    def faces(self, path: str, sha256: str) -> list[FaceFacts]:
        """The faces of the media at ``path``, in frame order, each with its match and its person's decision there."""
        return [
            FaceFacts(face_id=row["id"], frame_time=row["frame_time"],
                      box=Box(row["top"], row["right"], row["bottom"], row["left"]), person_id=row["person_id"],
                      person=row["name"],
                      distance=row["distance"], decided_on=row["decided_on"], action=row["action"],
                      rule=row["rule"], reason=row["reason"])
            for row in self.db.query(
                "SELECT fa.id, fa.frame_time, fa.top, fa.right, fa.bottom, fa.left, m.distance, m.person_id, p.name, "
                "d.face_id AS decided_on, d.action, d.rule, d.reason FROM faces fa "
                "LEFT JOIN matches m ON m.face_id = fa.id "
                "LEFT JOIN people p ON p.id = m.person_id "
                "LEFT JOIN decisions d ON d.path = ? AND d.person_id = m.person_id "
                "WHERE fa.sha256 = ? ORDER BY fa.frame_time, fa.seq",
                [path, sha256],
            )
        ]
