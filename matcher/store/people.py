"""People who opted out and their reference embeddings."""

from __future__ import annotations

import json

import numpy as np

from matcher.model import Person, Reference
from matcher.store.core import Database, from_blob, to_blob


class People:
    def __init__(self, database: Database):
        self.db = database

    def by_name(self, name: str) -> Person | None:
        found = self._select("WHERE name = ?", [name])
        return found[0] if found else None

    def by_id(self, person_id: int) -> Person | None:
        found = self._select("WHERE id = ?", [person_id])
        return found[0] if found else None

    def by_access_code_hash(self, code_sha256: str) -> Person | None:
        found = self._select("WHERE access_code_sha256 = ?", [code_sha256])
        return found[0] if found else None

    def all(self) -> list[Person]:
        return self._select("ORDER BY name", [])

    def _select(self, where: str, params: list) -> list[Person]:
        return [
            _person(row)
            for row in self.db.query(
                "SELECT p.*, (SELECT count(*) FROM reference_faces r WHERE r.person_id = p.id) AS refs "
                f"FROM people p {where}",
                params,
            )
        ]

    def add_references(self, name: str, engine: str, references: list[Reference], public_figure: bool | None,
                       accounts: list[str]) -> tuple[Person, int]:
        """Create or extend a person with references; returns the person and how many
        references were new (a photo enrolled twice is kept once)."""
        with self.db.write():
            existing = self.by_name(name)
            if existing is None:
                person_id = self.db.insert(
                    "INSERT INTO people (name, public_figure, accounts, enrolled_at) VALUES (?, ?, ?, ?)",
                    [name, int(bool(public_figure)), json.dumps(sorted(set(accounts))), self.db.now()],
                )
            else:
                person_id = existing.id
                merged = sorted(set(existing.accounts) | set(accounts))
                flag = existing.public_figure if public_figure is None else public_figure
                self.db.execute("UPDATE people SET public_figure = ?, accounts = ? WHERE id = ?",
                                [int(flag), json.dumps(merged), person_id])
            added = 0
            for reference in references:
                cursor = self.db.execute(
                    "INSERT INTO reference_faces (person_id, engine, embedding, photo_sha256, added_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [person_id, engine, to_blob(reference.embedding), reference.photo_sha256, self.db.now()],
                )
                added += cursor.rowcount
        return self.by_name(name), added

    def references(self, engine: str) -> list[tuple[int, np.ndarray]]:
        """``(person id, embedding)`` of every reference made by ``engine``."""
        return [(row["person_id"], from_blob(row["embedding"])) for row in self.db.query(
            "SELECT person_id, embedding FROM reference_faces WHERE engine = ?", [engine])]

    def reference_embeddings(self, person_id: int) -> list[np.ndarray]:
        return [from_blob(row["embedding"]) for row in self.db.query(
            "SELECT embedding FROM reference_faces WHERE person_id = ?", [person_id])]

    def set_opted_out(self, person_id: int, opted_out: bool) -> bool:
        """Pause (False) or resume (True) a person's opt-out; True when it changed."""
        with self.db.write():
            cursor = self.db.execute(
                "UPDATE people SET opted_out = ? WHERE id = ? AND coalesce(opted_out, 1) != ?",
                [int(opted_out), person_id, int(opted_out)],
            )
        return cursor.rowcount > 0

    def set_verified(self, person_id: int, method: str) -> None:
        """The person's opt-out was checked to come from them (``method``: liveness, id-document, operator...)."""
        with self.db.write():
            self.db.execute("UPDATE people SET verified_by = ?, verified_at = ? WHERE id = ?",
                            [method, self.db.now(), person_id])

    def set_thresholds(self, person_id: int, match: float | None, review: float | None) -> None:
        """The person's own thresholds (None: the rules')."""
        with self.db.write():
            self.db.execute("UPDATE people SET match_threshold = ?, review_threshold = ? WHERE id = ?",
                            [match, review, person_id])

    def set_access_code_hash(self, person_id: int, code_sha256: str) -> None:
        with self.db.write():
            self.db.execute("UPDATE people SET access_code_sha256 = ? WHERE id = ?", [code_sha256, person_id])

    def delete(self, person_id: int) -> int:
        """Delete the person and their references (part of an erasure); the number of references."""
        with self.db.write():
            references = self.db.execute("DELETE FROM reference_faces WHERE person_id = ?", [person_id]).rowcount
            self.db.execute("DELETE FROM people WHERE id = ?", [person_id])
        return references


def _person(row: dict) -> Person:
    return Person(
        id=row["id"],
        name=row["name"],
        public_figure=bool(row["public_figure"]),
        accounts=json.loads(row["accounts"] or "[]"),
        references=row.get("refs", 0),
        opted_out=row.get("opted_out") != 0,
        verified_by=row.get("verified_by"),
        match_threshold=row.get("match_threshold"),
        review_threshold=row.get("review_threshold"),
    )
