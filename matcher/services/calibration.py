"""Each enrolled person's own thresholds against hubs (see :mod:`matcher.hubs`), kept up to date.

The background is the stored faces that matched no one. Thresholds are
recomputed for everyone when that background has grown by a fifth since the
last time (after a folder scan, and every UPLOADS_BETWEEN_CHECKS uploads
through the API), for a newly enrolled person against the typical tail of that
time, and on demand (``consent-matcher thresholds``). A person who cannot be
measured keeps what they had. Every change is an audit entry, and the person's
stored faces are matched and decided again in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from matcher import hubs
from matcher.gallery import Gallery
from matcher.model import NewAuditEntry
from matcher.services.session import Session

BACKGROUND_SAMPLE = 5000  # background faces compared (spread over all stored ones)
UPLOADS_BETWEEN_CHECKS = 500  # API uploads between two looks at the background's growth
GROWTH = 1.2  # the background grown by this much: recompute everyone
_TYPICAL = "thresholds_typical_tail"  # meta: the typical tail last measured
_BACKGROUND = "thresholds_background"  # meta: the unmatched faces stored then
_UPLOADS = "thresholds_uploads"  # meta: API uploads recorded


@dataclass
class Recomputed:
    background: int  # faces compared
    typical_tail: float | None  # None: too few faces to measure anyone
    measured: int  # people with enough background beyond their review limit
    own: list[hubs.OwnThresholds] = field(default_factory=list)  # people with their own thresholds now
    changed: list[int] = field(default_factory=list)  # person ids whose thresholds changed

    def as_dict(self, names: dict[int, str]) -> dict:
        return {"background_faces": self.background, "typical_tail": self.typical_tail, "people_measured": self.measured,
                "changed": len(self.changed),
                "own_thresholds": [{"person": names.get(o.person_id, str(o.person_id)), "tail": o.tail,
                                    "match": o.match, "review": o.review} for o in self.own]}


def recompute_thresholds(session: Session, actor: str, unmatched: int | None = None) -> Recomputed:
    """Measure every person against the background and store their own thresholds (``unmatched``:
    the stored faces that match no one, when the caller has counted them)."""
    store, policy = session.store, session.policy
    # Measured outside the write lock (it may take a while with many people: scans go on),
    # then stored and applied in one transaction.
    unmatched = store.observations.unmatched_count() if unmatched is None else unmatched
    background = store.observations.unmatched_sample(BACKGROUND_SAMPLE, unmatched)
    gallery = Gallery.build(store.people.references(session.engine))
    tails = hubs.impostor_tails(gallery, background, policy.review)
    own = hubs.own_thresholds(gallery.person_ids, tails, policy.match, policy.review)
    typical = hubs.typical_tail(tails)
    with store.write():
        changed = _store(session, own, actor)
        if typical is not None:
            store.database.set_meta(_TYPICAL, repr(typical))
        _match_again(session, changed, actor)
        store.database.set_meta(_BACKGROUND, str(unmatched))  # the background measured against
    return Recomputed(len(background), typical, int(np.count_nonzero(~np.isnan(tails))),
                      [o for o in own if o.match is not None], changed)


def after_scan(session: Session, actor: str) -> Recomputed | None:
    """Recompute everyone when the background has grown enough since the last time (None: it has not)."""
    if not session.policy.hubs_after_scans:
        return None
    store = session.store
    count = store.observations.unmatched_count()
    last = store.database.get_meta(_BACKGROUND)
    if count < hubs.MIN_BACKGROUND or (last is not None and count < int(last) * GROWTH):
        return None
    return recompute_thresholds(session, actor, count)


def after_upload(session: Session, actor: str) -> Recomputed | None:
    """:func:`after_scan`, every UPLOADS_BETWEEN_CHECKS uploads (counting the background costs a
    pass over the stored faces: not for every upload)."""
    if session.store.database.increment_meta(_UPLOADS) % UPLOADS_BETWEEN_CHECKS:
        return None  # one upload in UPLOADS_BETWEEN_CHECKS looks (one, even with several writers)
    return after_scan(session, actor)


def for_new_references(session: Session, person_id: int, actor: str) -> None:
    """A person's own thresholds, against the typical tail last measured (nothing before the first
    measurement): called when they enroll or add references, before their faces are looked for."""
    store, policy = session.store, session.policy
    typical = store.database.get_meta(_TYPICAL)
    if typical is None:
        return
    gallery = Gallery.build(store.people.references(session.engine)).of_person(person_id)
    background = store.observations.unmatched_sample(BACKGROUND_SAMPLE)
    tails = hubs.impostor_tails(gallery, background, policy.review)
    _store(session, hubs.own_thresholds(gallery.person_ids, tails, policy.match, policy.review, float(typical)), actor)


def _store(session: Session, own: list[hubs.OwnThresholds], actor: str) -> list[int]:
    """Store the thresholds that differ from the person's, each with its audit entry; their ids.
    A person not measured (too few background faces beyond their review limit) keeps theirs."""
    store = session.store
    changed = []
    with store.write():
        people = {person.id: person for person in store.people.all()}  # read under the write lock
        for thresholds in own:
            person = people.get(thresholds.person_id)
            if person is None or thresholds.tail is None or (person.match_threshold, person.review_threshold) == (
                    thresholds.match, thresholds.review):
                continue
            store.people.set_thresholds(person.id, thresholds.match, thresholds.review)
            store.audit.append([NewAuditEntry(
                actor, "thresholds", f"person:{person.id}",
                old=json.dumps([person.match_threshold, person.review_threshold]),
                new=json.dumps([thresholds.match, thresholds.review]),
                detail=json.dumps({"tail": thresholds.tail, "rules": [session.policy.match, session.policy.review]}))])
            changed.append(person.id)
    return changed


def _match_again(session: Session, person_ids: list[int], actor: str) -> None:
    """Match every stored face near these people again under their new thresholds, and re-decide."""
    if person_ids:
        session.decider(actor).match_new_references(*person_ids)  # one pass over the stored faces
