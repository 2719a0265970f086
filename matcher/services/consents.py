"""Consents: what a person agrees to be shown in, and ending that agreement."""

from __future__ import annotations

import json
from dataclasses import asdict

from matcher.model import NewAuditEntry, Person
from matcher.services.errors import ActionError, MissingScope
from matcher.services.session import Session


def grant(session: Session, person: Person, actor: str, media_sha256: str | None = None,
          uploader: str | None = None, until: str | None = None) -> int:
    """Record a consent (one media item, one uploader, until a date, or a combination); its id."""
    if not (media_sha256 or uploader or until):
        raise MissingScope("say what the consent covers: a media item, an uploader and/or an end date")
    store = session.store
    with store.write():
        consent_id = store.consents.add(person.id, media_sha256, uploader, until)
        store.audit.append([NewAuditEntry(actor, "consent-grant", f"person:{person.id}", new=f"consent:{consent_id}",
                                          detail=json.dumps({"media_sha256": media_sha256, "uploader": uploader,
                                                             "until": until}), about=person.id)])
    session.decider(actor).redecide_person(person.id)
    return consent_id


def revoke(session: Session, consent_id: int, actor: str, person_id: int | None = None) -> int:
    """End an active consent (only one of ``person_id``'s when given); the person it was of."""
    store = session.store
    with store.write():
        owner = store.consents.revoke(consent_id, person_id)
        if owner is None:
            raise ActionError(f"no active consent with id {consent_id}")
        store.audit.append([NewAuditEntry(actor, "consent-revoke", f"person:{owner}", old=f"consent:{consent_id}")])
    session.decider(actor).redecide_person(owner)
    return owner


def of_person(session: Session, person_id: int) -> list[dict]:
    """A person's consents, each with its status today: active, expired or revoked."""
    today = session.clock.today()
    return [{**asdict(consent), "status": consent.status(today)} for consent in session.store.consents.of_person(person_id)]
