"""Enrolling a person who opts out, and matching their references against every face already stored."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from matcher.model import NewAuditEntry, Person
from matcher.references import ReferencePhoto, check_same_person
from matcher.services import calibration
from matcher.services.session import Session


@dataclass
class Enrolled:
    person: Person
    added: int
    stored_faces_matched: int
    media_rematched: int
    seconds: float
    need_rescan: list[str]


def enroll(session: Session, name: str, photos: list[ReferencePhoto], actor: str,
           public_figure: bool | None = None, accounts: list[str] = (), verified_by: str | None = None) -> Enrolled:
    """Create or extend ``name`` with the references of ``photos`` and match them against the faces already stored.

    ``verified_by``: how the enrollment was checked to come from the person shown
    (an operator enrolling from the command line, a passed liveness check);
    None leaves a new opt-out unverified (its matches go to review at most).
    Raises :class:`matcher.references.EnrollError` when a new reference does not
    look like the person's other references.
    """
    store = session.store
    existing = store.people.by_name(name)
    check_same_person(photos, store.people.reference_embeddings(existing.id) if existing else [],
                      session.policy.review)
    with store.write():
        person, added = store.people.add_references(name, session.engine, [photo.reference() for photo in photos],
                                                    public_figure, list(accounts))
        store.audit.append([NewAuditEntry(actor, "enroll", f"person:{person.id}", detail=json.dumps(
            {"references_added": added, "public_figure": person.public_figure}))])
        if verified_by and not person.verified:
            mark_verified(session, person, verified_by, actor, by=actor)
    if added:
        store.observations.bump_gallery_version()
        calibration.for_new_references(session, person.id, actor)
    started = time.perf_counter()
    affected = session.decider(actor).match_new_references(person.id)
    seconds = time.perf_counter() - started
    return Enrolled(store.people.by_id(person.id), added, store.decisions.match_count(person.id), len(affected),
                    seconds, store.observations.files_needing_rescan())


def mark_verified(session: Session, person: Person, method: str, actor: str, by: str) -> None:
    """Record (with its audit entry) that the person's opt-out was checked to come from them."""
    store = session.store
    with store.write():
        store.people.set_verified(person.id, method)
        store.audit.append([NewAuditEntry(actor, "verify", f"person:{person.id}", new=method,
                                          detail=json.dumps({"method": method, "by": by}))])
