"""A person's opt-out: pause it, resume it, or erase the person altogether."""

from __future__ import annotations

import json

from matcher.model import NewAuditEntry, Person
from matcher.services.enrollment import mark_verified
from matcher.services.errors import ActionError
from matcher.services.session import Session

# How an opt-out may be verified: by the person themselves in a liveness check, or by
# an operator who saw an identity document, spoke with the person, or acts for them.
VERIFICATION_METHODS = ("liveness", "id-document", "in-person", "representative", "operator")


def verify(session: Session, person: Person, method: str, by: str, actor: str) -> bool:
    """Mark the person's opt-out verified (``by``: who checked, ``method``: how); True when it changed.

    From now on their confident matches may be removed without a person's look.
    """
    if method not in VERIFICATION_METHODS:
        raise ActionError(f"unknown verification method {method!r} (one of: {', '.join(VERIFICATION_METHODS)})")
    if not by.strip():
        raise ActionError("say who verified the opt-out")
    if person.verified_by == method:
        return False
    mark_verified(session, person, method, actor, by=by.strip())
    session.decider(actor).redecide_person(person.id)
    return True


def set_opted_out(session: Session, person: Person, opted_out: bool, actor: str) -> bool:
    """Resume (True) or pause (False) a person's opt-out; True when it changed."""
    store = session.store
    with store.write():
        changed = store.people.set_opted_out(person.id, opted_out)
        if changed:
            store.audit.append([NewAuditEntry(actor, "opt-out" if opted_out else "opt-in", f"person:{person.id}")])
    if changed:
        session.decider(actor).redecide_person(person.id)
    return changed


def forget(session: Session, person: Person, actor: str) -> dict[str, int]:
    """Erase everything about a person, then compact the file so no erased byte remains.

    References, consents, reviews, the faces of scanned media that matched them
    (their embeddings are theirs too), those matches, the decisions, their web
    sessions, and the key of their audit entries' personal details (notes,
    uploaders, paths), which can then no longer be read; the chain still
    verifies. The audit trail keeps that person:<id> was erased, and the counts.

    Raises :class:`matcher.store.NotCompacted` when the erasure is recorded but
    another process's open read still keeps the erased bytes in the file.
    """
    store = session.store
    with store.write():
        affected = store.decisions.media_with_person(person.id)
        face_ids = store.decisions.faces_of_person(person.id)
        counts = store.decisions.delete_of_person(person.id)
        counts["matched_faces"] = len(face_ids)
        store.observations.delete_faces(face_ids)
        counts["consents"] = store.consents.delete_of_person(person.id)
        store.credentials.end_sessions_of("person", str(person.id))
        counts["references"] = store.people.delete(person.id)
        counts["media_affected"] = len(affected)
        store.audit.forget_person(person.id)
        store.audit.append([NewAuditEntry(actor, "erasure", f"person:{person.id}", detail=json.dumps(counts))])
    store.observations.bump_gallery_version()
    session.decider(actor).update(affected)
    store.compact()
    return counts
