"""Match stored faces against enrolled people and decide by the policy rules.

Works from stored observations only: nothing here decodes media, so a change
of enrollment, consent or rules re-decides without rescanning.
"""

from __future__ import annotations

import json
from datetime import date

from matcher.match import Gallery, assign
from matcher.policy import Facts, Policy
from matcher.store import Store, now


class Decider:
    """Matching and deciding against a snapshot of enrollments and consents.

    Built once per command (the gallery of references is the costly part),
    then applied to all media or to the media of one scanned file at a time.
    """

    def __init__(self, store: Store, policy: Policy, engine: str):
        self.store = store
        self.policy = policy
        self.gallery = Gallery.build(store.references(engine))
        self.people = {person.id: person for person in store.people()}
        self.consents = store.active_consents()

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
            distances = self.gallery.distances(embeddings)
            for result in assign(distances, self.gallery.person_ids, self.policy.review):
                if result.distance is not None:
                    rows.append((face_ids[result.face], result.person_id, result.distance))
        db = self.store.db
        with db.conn:
            if sha256s is None:
                db.execute("DELETE FROM matches")
            else:
                _delete_in(db, "matches", "face_id", face_ids_done)
            db.conn.executemany("INSERT INTO matches (face_id, person_id, distance) VALUES (?, ?, ?)", rows)

    def redecide(self, sha256s: list[str] | None = None) -> None:
        """Store one decision per person seen in each file of ``sha256s`` (every file when None).

        A person seen several times in one file (a video's frames, a GIF's
        frames) gets one decision, made on their closest face there.
        """
        today = date.today().isoformat()
        where, params = "", []
        if sha256s is not None:
            where = f"AND f.sha256 IN ({','.join('?' * len(sha256s))})"
            params = list(sha256s)
        closest: dict[tuple[str, int], dict] = {}
        for row in self.store.db.query(
            "SELECT f.path, f.sha256, f.uploader, f.context, m.face_id, m.person_id, m.distance "
            "FROM files f JOIN faces fa ON fa.sha256 = f.sha256 JOIN matches m ON m.face_id = fa.id "
            f"WHERE m.person_id IS NOT NULL {where} ORDER BY f.path",
            params,
        ):
            key = (row["path"], row["person_id"])
            if key not in closest or row["distance"] < closest[key]["distance"]:
                closest[key] = row
        decisions = []
        for row in closest.values():
            person = self.people[row["person_id"]]
            facts = Facts(
                person=person.name,
                distance=row["distance"],
                match=self.policy.strength(row["distance"]),
                consent=any(
                    _covers(c, person.id, row["sha256"], row["uploader"], today) for c in self.consents
                ),
                self_posted=row["uploader"] is not None and row["uploader"] in person.accounts,
                public_figure=person.public_figure,
                uploader=row["uploader"],
                context=frozenset(json.loads(row["context"] or "[]")),
            )
            decision = self.policy.decide(facts)
            decisions.append(
                (row["path"], person.id, row["face_id"], decision.action, decision.rule, decision.reason,
                 self.policy.sha256, now())
            )
        db = self.store.db
        with db.conn:
            if sha256s is None:
                db.execute("DELETE FROM decisions")
            else:
                db.execute(
                    "DELETE FROM decisions WHERE path IN (SELECT path FROM files WHERE sha256 IN "
                    f"({','.join('?' * len(sha256s))}))",
                    list(sha256s),
                )
            db.conn.executemany(
                "INSERT OR REPLACE INTO decisions "
                "(path, person_id, face_id, action, rule, reason, policy_sha256, decided_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                decisions,
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


def refresh_if_rules_changed(store: Store, policy: Policy, engine: str) -> bool:
    """Re-decide everything from stored facts when the rules differ from the ones last used.

    True when earlier decisions were re-made (False for a new database)."""
    previous = store.get_meta("policy_sha256")
    if previous == policy.sha256:
        return False
    Decider(store, policy, engine).update()
    store.set_meta("policy_sha256", policy.sha256)
    return previous is not None
