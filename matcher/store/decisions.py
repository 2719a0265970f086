"""Matches of faces with people, the decisions made on them, reviewers' verdicts and the flood guard.

Matches are observations (which person a face is closest to, and how close);
decisions are derived from them and from the facts of the file and person,
so they can always be made again.
"""

from __future__ import annotations

import json

import numpy as np

from matcher.decide import shown_version
from matcher.model import DecisionRecord, MatchFact, PendingReview, Review
from matcher.store.core import Database, from_blob, marks, text_path

# What a decision rests on: the file (path, uploader, context, scan) and one match of one of its faces.
_MATCH_FACTS = (
    "SELECT f.path, f.sha256, f.uploader, f.context, f.scanned_in, m.face_id, m.person_id, m.distance, "
    "fa.quality, fa.left, fa.right "
    "FROM files f JOIN faces fa ON fa.sha256 = f.sha256 JOIN matches m ON m.face_id = fa.id "
)
_DECISION_COLUMNS = ("path", "person_id", "face_id", "item", "action", "rule", "reason", "policy_sha256", "decided_at")
_UPDATE_DECISION = ", ".join(f"{column} = excluded.{column}" for column in _DECISION_COLUMNS[2:])


def _files_of(sha256s: list[str] | None) -> tuple[str, list]:
    """A WHERE clause on ``path`` for the files holding these media (all files when None)."""
    if sha256s is None:
        return "", []
    return f"WHERE path IN (SELECT path FROM files WHERE sha256 IN ({marks(sha256s)}))", list(sha256s)


class Decisions:
    def __init__(self, database: Database):
        self.db = database

    # -- matches ----------------------------------------------------------------------

    def replace_matches(self, face_ids: list[int] | None, matches: list[tuple[int, int, float]]) -> None:
        """Replace the matches of ``face_ids`` (of every face when None) by ``(face id, person id, distance)``."""
        with self.db.write():
            if face_ids is None:
                self.db.execute("DELETE FROM matches")
            else:
                self.db.delete_in("matches", "face_id", face_ids)
            # DO UPDATE: another writer may have replaced the same faces' matches meanwhile (its rows
            # committed after this DELETE read the table); the later write wins, nothing is doubled.
            self.db.executemany("INSERT INTO matches (face_id, person_id, distance) VALUES (?, ?, ?) ON CONFLICT "
                                "(face_id) DO UPDATE SET person_id = excluded.person_id, distance = excluded.distance",
                                matches)

    def match_count(self, person_id: int) -> int:
        return self.db.one("SELECT count(*) FROM matches WHERE person_id = ?", [person_id])

    def media_with_person(self, person_id: int) -> list[str]:
        """The media in which the person was seen."""
        return [row["sha256"] for row in self.db.query(
            "SELECT DISTINCT fa.sha256 FROM matches m JOIN faces fa ON fa.id = m.face_id WHERE m.person_id = ?",
            [person_id])]

    def faces_of_person(self, person_id: int) -> list[int]:
        return [row["face_id"] for row in self.db.query("SELECT face_id FROM matches WHERE person_id = ?",
                                                        [person_id])]

    def match_facts(self, sha256s: list[str] | None = None) -> list[MatchFact]:
        """Every match with a person in the files of these media (all files when None), by path."""
        where, params = "", []
        if sha256s is not None:
            where, params = f"AND f.sha256 IN ({marks(sha256s)})", list(sha256s)
        return [_fact(row) for row in self.db.query(
            _MATCH_FACTS + f"WHERE m.person_id IS NOT NULL {where} ORDER BY f.path", params)]

    def match_fact(self, path: str, face_id: int) -> MatchFact:
        return _fact(next(self.db.query(_MATCH_FACTS + "WHERE f.path = ? AND m.face_id = ?", [path, face_id])))

    # -- decisions ------------------------------------------------------------------------

    def of_media(self, sha256s: list[str] | None = None) -> dict[tuple[str, int], DecisionRecord]:
        """The decisions on the files of these media (all files when None), by (path, person id)."""
        where, params = _files_of(sha256s)
        return {(row["path"], row["person_id"]): _decision(row) for row in self.db.query(
            f"SELECT * FROM decisions {where}", params)}

    def replace(self, sha256s: list[str] | None, decisions: list[DecisionRecord]) -> None:
        """Replace the decisions on the files of these media (of every file when None)."""
        where, params = _files_of(sha256s)
        with self.db.write():
            self.db.execute(f"DELETE FROM decisions {where}", params)
            self.db.executemany(
                f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) VALUES ({marks(_DECISION_COLUMNS)}) "
                f"ON CONFLICT (path, person_id) DO UPDATE SET {_UPDATE_DECISION}",
                [[getattr(d, column) for column in _DECISION_COLUMNS] for d in decisions])

    def by_item(self, item: str) -> DecisionRecord | None:
        rows = list(self.db.query("SELECT * FROM decisions WHERE item = ?", [item]))
        return _decision(rows[0]) if rows else None

    def of_file(self, path: str) -> dict[int, str]:
        """``{person id: action}`` for the people seen in a recorded file."""
        return {row["person_id"]: row["action"] for row in self.db.query(
            "SELECT person_id, action FROM decisions WHERE path = ?", [text_path(path)])}

    def of_files(self, paths: list[str]) -> dict[str, dict[int, str]]:
        """:meth:`of_file` of each of ``paths``."""
        found: dict[str, dict[int, str]] = {path: {} for path in paths}
        stored = {text_path(path): path for path in paths}
        for row in self.db.query_in("SELECT path, person_id, action FROM decisions WHERE path IN ({})", list(stored)):
            found[stored[row["path"]]][row["person_id"]] = row["action"]
        return found

    def media_of_person_in_scan(self, person_id: int, scan: int) -> list[str]:
        return [row["sha256"] for row in self.db.query(
            "SELECT DISTINCT f.sha256 FROM decisions d JOIN files f ON f.path = d.path "
            "WHERE d.person_id = ? AND f.scanned_in = ?", [person_id, scan])]

    def item_ids(self) -> dict[tuple[str, str], str]:
        """``{(path, person's name): item id}`` of every decision."""
        return {(row["path"], row["name"]): row["item"] for row in self.db.query(
            "SELECT d.path, d.item, p.name FROM decisions d JOIN people p ON p.id = d.person_id")}

    def pending_reviews(self, person_id: int | None = None) -> list[PendingReview]:
        """Items waiting for a reviewer, with the face box, distance, rule and reason."""
        where, params = "", []
        if person_id is not None:
            where, params = "AND d.person_id = ?", [person_id]
        items = []
        for row in self.db.query(
            "SELECT d.item, d.path, d.person_id, d.face_id, d.rule, d.reason, p.name, m.distance, fa.top, fa.right, fa.bottom, "
            "fa.left, fa.sha256, fa.frame_time FROM decisions d JOIN people p ON p.id = d.person_id "
            "JOIN matches m ON m.face_id = d.face_id JOIN faces fa ON fa.id = d.face_id "
            f"WHERE d.action = 'review' {where} ORDER BY d.path, p.name",
            params,
        ):
            times = [r["frame_time"] for r in self.db.query(
                "SELECT fa.frame_time FROM faces fa JOIN matches m ON m.face_id = fa.id "
                "WHERE fa.sha256 = ? AND m.person_id = ? AND fa.frame_time IS NOT NULL ORDER BY fa.frame_time",
                [row["sha256"], row["person_id"]])]
            items.append(PendingReview(
                id=row["item"], path=row["path"], person=row["name"], distance=round(row["distance"], 4),
                box=[row["top"], row["right"], row["bottom"], row["left"]], frame_times=times,
                rule=row["rule"], reason=row["reason"], frame_time=row["frame_time"],
                version=shown_version(row["face_id"], row["distance"], row["rule"], row["reason"])))
        return items

    # -- reviews and the flood guard ------------------------------------------------------------

    def reviews_of_media(self, sha256s: list[str] | None = None) -> dict[tuple[str, int], Review]:
        where, params = _files_of(sha256s)
        return {(row["path"], row["person_id"]): Review(**row) for row in self.db.query(
            f"SELECT * FROM reviews {where}", params)}

    def set_review(self, review: Review) -> None:
        with self.db.write():
            self.db.execute(
                "INSERT INTO reviews (path, person_id, verdict, reviewer, note, facts_sha256, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path, person_id) DO UPDATE SET verdict = excluded.verdict, "
                "reviewer = excluded.reviewer, note = excluded.note, facts_sha256 = excluded.facts_sha256, "
                "decided_at = excluded.decided_at",
                [review.path, review.person_id, review.verdict, review.reviewer, review.note, review.facts_sha256,
                 self.db.now()])

    def ruled_out(self) -> list[tuple[int, np.ndarray, tuple[int, float | None, float | None, bool, float | None]]]:
        """``(person id, embedding, quality measures)`` of each face a reviewer ruled is not the person
        it matched: the face each "not them" verdict was given on (the item's decided face)."""
        return [(row["person_id"], from_blob(row["embedding"]), face_measures(row["quality"], row["left"], row["right"]))
                for row in self.db.query(
                    "SELECT r.person_id, fa.embedding, fa.quality, fa.left, fa.right FROM reviews r "
                    "JOIN decisions d ON d.path = r.path AND d.person_id = r.person_id JOIN faces fa ON fa.id = d.face_id "
                    "WHERE r.verdict = 'not-them' AND fa.embedding IS NOT NULL ORDER BY fa.id")]

    def orphaned_not_them(self) -> list[tuple[str, int]]:
        """``(path, person id)`` of the "not them" verdicts whose item is no longer decided on (its file
        dropped by a scan that no longer saw it): their face is no evidence any more."""
        return [(row["path"], row["person_id"]) for row in self.db.query(
            "SELECT r.path, r.person_id FROM reviews r LEFT JOIN decisions d ON d.path = r.path "
            "AND d.person_id = r.person_id WHERE r.verdict = 'not-them' AND d.path IS NULL")]

    def ruled_out_version(self) -> int:
        """Counts the "not them" verdicts that ended (a new one is a change of the facts already)."""
        return int(self.db.get_meta("ruled_out_version") or 0)

    def bump_ruled_out_version(self) -> None:
        self.db.increment_meta("ruled_out_version")

    def delete_review(self, path: str, person_id: int) -> None:
        with self.db.write():
            self.db.execute("DELETE FROM reviews WHERE path = ? AND person_id = ?", [path, person_id])

    def add_flood(self, person_id: int, scan: int, media: int) -> None:
        with self.db.write():
            self.db.execute("INSERT INTO floods (person_id, scan, media, at) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING",
                            [person_id, scan, media, self.db.now()])

    def floods(self) -> set[tuple[int, int]]:
        """``(person id, scan)`` of every flood guard that tripped."""
        return {(row["person_id"], row["scan"]) for row in self.db.query("SELECT person_id, scan FROM floods")}

    # -- erasure ------------------------------------------------------------------------------------

    def delete_of_person(self, person_id: int) -> dict[str, int]:
        """Delete the person's decisions, reviews, matches and floods (inside an erasure's transaction)."""
        with self.db.write():
            counts = {
                "decisions": self.db.execute("DELETE FROM decisions WHERE person_id = ?", [person_id]).rowcount,
                "reviews": self.db.execute("DELETE FROM reviews WHERE person_id = ?", [person_id]).rowcount,
            }
            self.db.execute("DELETE FROM matches WHERE person_id = ?", [person_id])
            self.db.execute("DELETE FROM floods WHERE person_id = ?", [person_id])
        return counts


def _fact(row: dict) -> MatchFact:
    width, sharpness, brightness, frontal, lower_texture = face_measures(row["quality"], row["left"], row["right"])
    return MatchFact(path=row["path"], sha256=row["sha256"], uploader=row["uploader"],
                     context=tuple(json.loads(row["context"] or "[]")), scanned_in=row["scanned_in"],
                     face_id=row["face_id"], person_id=row["person_id"], distance=row["distance"],
                     face_width=width, sharpness=sharpness, brightness=brightness, frontal=frontal,
                     lower_texture=lower_texture)


def face_measures(quality: str | None, left: int,
                  right: int) -> tuple[int, float | None, float | None, bool, float | None]:
    """A stored face's width, sharpness, brightness, whether it was seen frontally, and its lower
    face's texture (faces stored before they were measured: the box's width; before ``frontal``
    was: HOG found them all; before ``lower_texture`` was: unknown, never under a limit)."""
    if quality:
        measured = json.loads(quality)
        return (measured["width"], measured.get("sharpness"), measured.get("brightness"), measured.get("frontal", True),
                measured.get("lower_texture"))
    return right - left, None, None, True, None


def _decision(row: dict) -> DecisionRecord:
    return DecisionRecord(**{column: row[column] for column in _DECISION_COLUMNS})
