"""Match stored faces against the enrolled people and store the decisions the rules make.

Works from stored observations only: nothing here decodes media, so a change
of enrollment, consent, opt-out or rules re-decides without rescanning. The
matching is :mod:`matcher.gallery`'s, the deciding :mod:`matcher.decide`'s;
this module reads their inputs from the store and writes their results back,
with an audit entry for every decision that changes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from matcher.decide import Snapshot, decide_items, item_id, own_limits
from matcher.gallery import Assignment, Gallery, RuledOut, assign
from matcher.model import MatchFact, NewAuditEntry, ObservedFace
from matcher.policy import Facts, Policy
from matcher.store import Store


class Decider:
    """Matching and deciding against a snapshot of enrollments, consents and flood guards.

    Built once per command (the gallery of references is the costly part),
    then applied to all media or to the media of one scanned file at a time.
    Each write of matches or decisions holds the facts steady (other writers
    run side by side; a change of the facts waits for it) and first takes a new
    snapshot if they changed since the last one: a scan, a web request and a
    command writing at once never leave a decision made on facts since changed.
    """

    def __init__(self, store: Store, policy: Policy, engine: str, today: str, actor: str = "system"):
        self.store, self.policy, self.engine, self.today, self.actor = store, policy, engine, today, actor
        self._load()

    def _load(self) -> None:
        store, policy = self.store, self.policy
        self.facts_version = store.audit.last_fact_change()  # read first: a change after it is seen
        self.gallery = Gallery.build(store.people.references(self.engine))
        self._load_ruled_out()
        self.snapshot = Snapshot(policy, {person.id: person for person in store.people.all()},
                                 store.consents.active(), store.decisions.floods(), self.today)
        # Each person's review limit (their own when tighter than the rules'), in the gallery's order.
        self.person_review = np.array([
            policy.limits(person=own_limits(self.people[pid], policy) if pid in self.people else None).review
            for pid in self.gallery.person_ids], dtype=np.float32)

    def _load_ruled_out(self) -> None:
        """The faces reviewers ruled not them, each vouching within its own band's look-alike limit."""
        policy = self.policy
        self.ruled_out_version = self.store.decisions.ruled_out_version()  # read first: a change after it is seen
        self.ruled_out = RuledOut.build([(person_id, embedding, policy.look_alike_limit(policy.limits(*quality).match))
                                         for person_id, embedding, quality in self.store.decisions.ruled_out()])

    def hold_current_facts(self) -> None:
        """Inside a write: hold the facts steady, and take them anew if they changed since loaded."""
        if self.store.audit.hold_facts() != self.facts_version:
            self._load()
        elif self.store.decisions.ruled_out_version() != self.ruled_out_version:  # a "not them" ended elsewhere
            self._load_ruled_out()

    @property
    def people(self):
        return self.snapshot.people

    @property
    def floods(self) -> set[tuple[int, int]]:
        return self.snapshot.floods

    def update(self, sha256s: list[str] | None = None) -> None:
        """Rematch and re-decide the media ``sha256s`` (every media item when None), in one transaction."""
        with self.store.write():
            self.hold_current_facts()
            self.rematch(sha256s)
            self.redecide(sha256s)

    def rematch(self, sha256s: list[str] | None = None) -> None:
        """Store, for each face, its assigned person (or none) and the distance.

        One distance matrix per image (per video frame), whatever the number
        of enrolled people.
        """
        with self.store.write():
            self.hold_current_facts()
            rows, face_ids_done = [], []
            for frame in self.store.observations.media_faces(sha256s):
                face_ids_done.extend(frame.ids)
                for result in self._assign(frame.embeddings, frame.qualities):
                    if result.distance is not None:
                        rows.append((frame.ids[result.face], result.person_id, result.distance))
            self.store.decisions.replace_matches(None if sha256s is None else face_ids_done, rows)

    def matched_faces(self, faces: list[ObservedFace]) -> list[bool]:
        """For the faces of one file: whether each matches an enrolled person."""
        if self.store.in_write:
            self.hold_current_facts()
        matched = [False] * len(faces)
        frames: dict[float | None, list[int]] = {}
        for index, face in enumerate(faces):
            frames.setdefault(face.frame_time, []).append(index)
        for indexes in frames.values():
            qualities = [(faces[i].quality.width, faces[i].quality.sharpness, faces[i].quality.brightness,
                          faces[i].quality.frontal, faces[i].quality.lower_texture)
                         if faces[i].quality else (faces[i].box.width, None, None, faces[i].box.frontal, None)
                         for i in indexes]
            for result in self._assign(np.stack([faces[i].embedding for i in indexes]), qualities):
                if result.person_id is not None:
                    matched[indexes[result.face]] = True
        return matched

    def _assign(self, embeddings: np.ndarray, qualities: list[tuple]) -> list[Assignment]:
        """The faces of one image (one frame) given their people: one distance matrix.

        A face is given a person only within the review limit of its quality band and of that person.
        """
        band_review = np.array([self.policy.limits(*quality).review for quality in qualities], dtype=np.float32)
        limits = np.minimum(band_review[:, None], self.person_review[None, :])
        return assign(self.gallery.distances(embeddings), self.gallery.person_ids, limits)

    def match_new_references(self, *person_ids: int) -> list[str]:
        """Retroactive matching: check every stored face against these people's references.

        One pass over all stored embeddings, one matrix product per block; only
        the media with a face within ``review`` of one of them are then
        rematched and re-decided. Returns those media.
        """
        people = self.gallery.of_people(person_ids)
        if not len(people):
            return []
        candidates = []
        for face_ids, embeddings in self.store.observations.blocks():
            # float16 blocks: a small margin, then the candidates are rematched exactly.
            close = people.distances(embeddings).min(axis=1) <= self.policy.review + 0.01
            candidates.extend(face_ids[close].tolist())
        sha256s = self.store.observations.media_of_faces(candidates)
        if sha256s:
            self.update(sha256s)
        return sha256s

    def redecide_person(self, person_id: int) -> None:
        """Re-decide the media in which the person was seen (after a consent or opt-out change)."""
        sha256s = self.store.decisions.media_with_person(person_id)
        if sha256s:
            self.redecide(sha256s)

    def item_facts(self, path: str, face_id: int) -> tuple[MatchFact, Facts]:
        """The stored match and the facts of the decision made on ``face_id`` in the file at ``path``."""
        match, = self._with_ruled_out([self.store.decisions.match_fact(path, face_id)])
        return match, self.snapshot.facts(match)

    def _with_ruled_out(self, matches: list[MatchFact]) -> list[MatchFact]:
        """``matches`` with each face's distance to the nearest face ruled not that person (where a
        reviewer ruled any): one distance matrix per person."""
        faces_of: dict[int, set[int]] = {}
        for match in matches:
            if match.person_id in self.ruled_out:
                faces_of.setdefault(match.person_id, set()).add(match.face_id)
        if not faces_of:
            return matches
        vectors = self.store.observations.embeddings_of(sorted(set().union(*faces_of.values())))
        nearest: dict[int, float | None] = {}
        for person_id, face_ids in faces_of.items():
            kept = [face_id for face_id in sorted(face_ids) if face_id in vectors]
            if kept:
                nearest.update(zip(kept, self.ruled_out.nearest(person_id, np.stack([vectors[f] for f in kept]))))
        return [replace(match, ruled_out_distance=nearest[match.face_id]) if match.face_id in nearest else match
                for match in matches]

    def redecide(self, sha256s: list[str] | None = None) -> None:
        """Store one decision per person seen in each file of ``sha256s`` (every file when None),
        with the audit entries of those that changed, in one transaction."""
        if sha256s is not None and not sha256s:
            return
        decisions = self.store.decisions
        with self.store.write():
            self.hold_current_facts()
            matches, old = decisions.match_facts(sha256s), decisions.of_media(sha256s)
            reviews = decisions.reviews_of_media(sha256s)
            outcome = decide_items(self.snapshot, self._with_ruled_out(matches), old, reviews, self.actor,
                                   self.store.database.now())
            for path, person_id in outcome.expired_reviews:
                decisions.delete_review(path, person_id)
            ended = sorted({person_id for path, person_id in outcome.expired_reviews
                            if reviews[(path, person_id)].verdict == "not-them"})
            if ended:  # their faces no longer clear anything: decided again without them before anything is written
                self._end_not_them_evidence()
                again = decide_items(self.snapshot, self._with_ruled_out(matches), old,
                                     {key: review for key, review in reviews.items()
                                      if key not in outcome.expired_reviews}, self.actor, self.store.database.now())
                again.audit += [entry for entry in outcome.audit if entry.event == "review-expired"]
                outcome = again
            decisions.replace(sha256s, outcome.decisions)
            self.store.audit.append(outcome.audit)
            for person_id in ended:  # and so are the items of theirs those verdicts cleared elsewhere
                self.redecide_person(person_id)

    def end_orphaned_not_them(self) -> None:
        """End the "not them" verdicts whose file is gone (a scan no longer saw it), and decide again
        what they cleared."""
        with self.store.write():
            orphans = self.store.decisions.orphaned_not_them()
            if not orphans:
                return
            for path, person_id in orphans:
                self.store.decisions.delete_review(path, person_id)
            self.store.audit.append([NewAuditEntry(self.actor, "review-expired", f"item:{item_id(path, person_id)}",
                                                   detail="the file the reviewer decided on is gone")
                                     for path, person_id in orphans])
            self._end_not_them_evidence()
            for person_id in sorted({person_id for _, person_id in orphans}):
                self.redecide_person(person_id)

    def _end_not_them_evidence(self) -> None:
        """Inside a write, after ending "not them" verdicts: every Decider takes the evidence anew."""
        self.store.decisions.bump_ruled_out_version()
        self._load_ruled_out()
