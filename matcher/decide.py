"""Match stored faces against enrolled people and decide by the policy rules.

Works from stored observations only: nothing here decodes media, so a change
of enrollment, consent, opt-out or rules re-decides without rescanning. Every
decision that changes is appended to the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import date

import numpy as np

from matcher import audit
from matcher.match import Assignment, Gallery, assign
from matcher.policy import Decision, Facts, Policy
from matcher.store import Store, now


def item_id(path: str, person_id: int) -> str:
    """The stable id of one item (a person seen in a file): the review queue's handle."""
    return hashlib.sha256(f"{path}\0{person_id}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


def facts_sha256(facts: Facts) -> str:
    """What a reviewer decided on: their verdict stands while this stays the same.

    The distance is rounded so that re-matching the same faces does not count as new facts.
    """
    values = asdict(facts)
    values["distance"] = round(values["distance"], 4)
    values["context"] = sorted(values["context"])
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


# What a decision rests on: the file (path, uploader, context, scan) and one match of one of its faces.
_MATCH_FACTS = (
    "SELECT f.path, f.sha256, f.uploader, f.context, f.scanned_in, m.face_id, m.person_id, m.distance "
    "FROM files f JOIN faces fa ON fa.sha256 = f.sha256 JOIN matches m ON m.face_id = fa.id "
)


class Decider:
    """Matching and deciding against a snapshot of enrollments, consents and reviews.

    Built once per command (the gallery of references is the costly part),
    then applied to all media or to the media of one scanned file at a time.
    """

    def __init__(self, store: Store, policy: Policy, engine: str, actor: str = "system"):
        self.store = store
        self.policy = policy
        self.engine = engine
        self.actor = actor
        self.gallery = Gallery.build(store.references(engine))
        self.people = {person.id: person for person in store.people()}
        self.consents = store.active_consents()
        self.floods = store.floods()
        self.today = today()

    def update(self, sha256s: list[str] | None = None) -> None:
        """Rematch and re-decide the media ``sha256s`` (every media item when None)."""
        self.rematch(sha256s)
        self.redecide(sha256s)

    def rematch(self, sha256s: list[str] | None = None) -> None:
        """Store, for each face, its assigned person (or none) and the distance.

        One distance matrix per image (per video frame), whatever the number
        of enrolled people.
        """
        rows, face_ids_done = [], []
        for _, face_ids, embeddings in self.store.media_faces(sha256s):
            face_ids_done.extend(face_ids)
            for result in self._assign(embeddings):
                if result.distance is not None:
                    rows.append((face_ids[result.face], result.person_id, result.distance))
        db = self.store.db
        with self.store.write():
            if sha256s is None:
                db.execute("DELETE FROM matches")
            else:
                _delete_in(db, "matches", "face_id", face_ids_done)
            db.conn.executemany("INSERT INTO matches (face_id, person_id, distance) VALUES (?, ?, ?)", rows)

    def matched_faces(self, faces: list[tuple[float | None, np.ndarray]]) -> list[bool]:
        """For faces ``(frame_time, embedding)`` of one file: whether each matches an enrolled person."""
        matched = [False] * len(faces)
        frames: dict[float | None, list[int]] = {}
        for index, (frame_time, _) in enumerate(faces):
            frames.setdefault(frame_time, []).append(index)
        for indexes in frames.values():
            for result in self._assign(np.stack([faces[i][1] for i in indexes])):
                if result.person_id is not None:
                    matched[indexes[result.face]] = True
        return matched

    def _assign(self, embeddings: np.ndarray) -> list[Assignment]:
        """The faces of one image (one frame) given their people: one distance matrix."""
        return assign(self.gallery.distances(embeddings), self.gallery.person_ids, self.policy.review)

    def match_new_references(self, person_id: int) -> list[str]:
        """Retroactive matching: check every stored face against one person's references.

        One matrix product over all stored embeddings; only the media with a
        face within ``review`` of the person are then rematched and re-decided.
        Returns those media.
        """
        person = self.gallery.of_person(person_id)
        if not len(person):
            return []
        candidates = []
        for face_ids, embeddings in self.store.face_blocks():
            # float16 blocks: a small margin, then the candidates are rematched exactly.
            close = person.distances(embeddings)[:, 0] <= self.policy.review + 0.01
            candidates.extend(face_ids[close].tolist())
        sha256s = self.store.media_of_faces(candidates)
        if sha256s:
            self.update(sha256s)
        return sha256s

    def redecide_person(self, person_id: int) -> None:
        """Re-decide the media in which the person was seen (after a consent or opt-out change)."""
        sha256s = [row["sha256"] for row in self.store.db.query(
            "SELECT DISTINCT fa.sha256 FROM matches m JOIN faces fa ON fa.id = m.face_id WHERE m.person_id = ?",
            [person_id],
        )]
        if sha256s:
            self.redecide(sha256s)

    def item_facts(self, path: str, face_id: int) -> tuple[str, Facts]:
        """(media sha256, facts) of the decision made on ``face_id`` in the file at ``path``."""
        row = next(self.store.db.query(_MATCH_FACTS + "WHERE f.path = ? AND m.face_id = ?", [path, face_id]))
        return row["sha256"], self.facts(row)

    def facts(self, row: dict) -> Facts:
        person = self.people[row["person_id"]]
        return Facts(
            person=person.name,
            distance=row["distance"],
            match=self.policy.strength(row["distance"]),
            consent=any(_covers(c, person.id, row["sha256"], row["uploader"], self.today) for c in self.consents),
            self_posted=row["uploader"] is not None and row["uploader"] in person.accounts,
            public_figure=person.public_figure,
            opted_out=person.opted_out,
            flood=(person.id, row["scanned_in"]) in self.floods,
            flood_limit=self.policy.flood_limit,
            uploader=row["uploader"],
            context=frozenset(json.loads(row["context"] or "[]")),
        )

    def redecide(self, sha256s: list[str] | None = None) -> None:
        """Store one decision per person seen in each file of ``sha256s`` (every file when None).

        A person seen several times in one file (a video's frames, a GIF's
        frames) gets one decision, made on their closest face there. A
        reviewer's verdict stands while the facts it was given on hold; when
        they change it expires, and the rules decide again. Changes are audited.
        """
        if sha256s is not None and not sha256s:
            return
        where, params = "", []
        if sha256s is not None:
            where = f"AND f.sha256 IN ({','.join('?' * len(sha256s))})"
            params = list(sha256s)
        db = self.store.db
        with self.store.write():
            closest: dict[tuple[str, int], dict] = {}
            for row in db.query(_MATCH_FACTS + f"WHERE m.person_id IS NOT NULL {where} ORDER BY f.path", params):
                key = (row["path"], row["person_id"])
                if key not in closest or row["distance"] < closest[key]["distance"]:
                    closest[key] = row
            file_filter = "" if sha256s is None else (
                f"WHERE path IN (SELECT path FROM files WHERE sha256 IN ({','.join('?' * len(sha256s))}))")
            old = {(r["path"], r["person_id"]): r for r in db.query(
                f"SELECT path, person_id, item, action, rule FROM decisions {file_filter}", params)}
            reviews = {(r["path"], r["person_id"]): r for r in db.query(
                f"SELECT * FROM reviews {file_filter}", params)}
            decisions, changes, expired = [], [], []
            for key, row in closest.items():
                facts = self.facts(row)
                decision = self.policy.decide(facts)
                review = reviews.get(key)
                if review is not None:
                    if review["facts_sha256"] == facts_sha256(facts):
                        decision = reviewer_decision(review)
                    else:
                        expired.append(key)
                item = item_id(*key)
                decisions.append((row["path"], row["person_id"], row["face_id"], item, decision.action, decision.rule,
                                  decision.reason, self.policy.sha256, now()))
                before = old.get(key)
                if before is None or (before["action"], before["rule"]) != (decision.action, decision.rule):
                    changes.append(_change(self.actor, item, row["path"], row["person_id"], before, decision,
                                           self.policy.sha256))
            for key, before in old.items():
                if key not in closest:  # the person is no longer seen there (a rescan, a new closer match)
                    changes.append(_change(self.actor, before["item"] or item_id(*key), key[0], key[1], before,
                                           None, self.policy.sha256))
            for path, person_id in expired:
                db.execute("DELETE FROM reviews WHERE path = ? AND person_id = ?", [path, person_id])
                changes.append(dict(actor=self.actor, event="review-expired", subject=f"item:{item_id(path, person_id)}",
                                    detail="the facts the reviewer decided on have changed"))
            if sha256s is None:
                db.execute("DELETE FROM decisions")
            else:
                db.execute(f"DELETE FROM decisions {file_filter}", params)
            db.conn.executemany(
                "INSERT OR REPLACE INTO decisions "
                "(path, person_id, face_id, item, action, rule, reason, policy_sha256, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                decisions,
            )
            audit.append_many(self.store, changes)


def reviewer_decision(review: dict) -> Decision:
    action = "remove" if review["verdict"] == "remove" else "allow"
    note = f": {review['note']}" if review["note"] else ""
    return Decision(action, "reviewer", f"{review['verdict']} decided by reviewer {review['reviewer']}{note}")


def _change(actor: str, item: str, path: str, person_id: int, before: dict | None, decision: Decision | None,
            policy_sha256: str) -> dict:
    return dict(
        actor=actor,
        event="decision",
        subject=f"item:{item}",
        old=before["action"] if before else None,
        new=decision.action if decision else None,
        rule=decision.rule if decision else None,
        policy_sha256=policy_sha256,
        detail=json.dumps({"path": path, "person": f"person:{person_id}"}, ensure_ascii=False),
    )


def _covers(consent: dict, person_id: int, sha256: str, uploader: str | None, today: str) -> bool:
    """True when a consent of the person covers this media item from this uploader today."""
    if consent["person_id"] != person_id:
        return False
    if consent["media_sha256"] is not None and consent["media_sha256"] != sha256:
        return False
    if consent["uploader"] is not None and consent["uploader"] != uploader:
        return False
    if consent["until"] is not None and today > consent["until"]:
        return False
    return True


def _delete_in(db, table: str, column: str, values: list) -> None:
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        db.execute(f"DELETE FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)


def today() -> str:
    """The date consents are judged on (a function, so tests can move the clock)."""
    return date.today().isoformat()


def refresh_stale_decisions(store: Store, policy: Policy, engine: str) -> bool:
    """Bring stored decisions up to date before a command uses them.

    - The rules file differs from the one last used: everything is re-decided
      from stored facts (returns True, except for a new database).
    - A day has passed and some consent ended meanwhile (``--until``): the
      media of those people are re-decided.
    """
    previous = store.get_meta("policy_sha256")
    current_day, last_day = today(), store.get_meta("decided_on")
    if previous != policy.sha256:
        with store.write():
            Decider(store, policy, engine).update()
            store.set_meta("policy_sha256", policy.sha256)
            store.set_meta("decided_on", current_day)
            audit.append(store, "system", "rules", "rules", old=previous, new=policy.sha256,
                         policy_sha256=policy.sha256, detail=policy.path)
        return previous is not None
    if last_day != current_day:
        with store.write():
            expired = [row["person_id"] for row in store.db.query(
                "SELECT DISTINCT person_id FROM consents WHERE revoked_at IS NULL AND until IS NOT NULL "
                "AND until >= ? AND until < ?", [last_day or "", current_day])]
            decider = Decider(store, policy, engine)
            for person_id in expired:
                decider.redecide_person(person_id)
            store.set_meta("decided_on", current_day)
    return False
