"""What people do to the records: enroll, consent, opt in or out, erase, review.

Each action changes the store, appends its audit entry in the same
transaction, and re-decides the media it affects from stored facts. The
command line and the web app are thin layers over these functions, so both
behave the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from matcher import audit, decide
from matcher.decide import Decider, facts_sha256
from matcher.engine import DlibEngine
from matcher.enroll import Reference, check_same_person
from matcher.policy import Policy
from matcher.store import Person, Store

ENGINE = DlibEngine.name


class ActionError(ValueError):
    """An action that cannot be done; the message says why, for the person who asked."""


@dataclass
class Enrolled:
    person: Person
    added: int
    stored_faces_matched: int
    media_rematched: int
    seconds: float
    need_rescan: list[str]


def enroll(store: Store, policy: Policy, name: str, references: list[Reference], actor: str,
           public_figure: bool | None = None, accounts: list[str] = ()) -> Enrolled:
    """Create or extend ``name`` with ``references`` and match them against the faces already stored.

    Raises :class:`matcher.enroll.EnrollError` when a new reference does not
    look like the person's other references.
    """
    existing = store.person(name)
    check_same_person(references, store.person_references(existing.id) if existing else [], policy.review)
    with store.write():
        person, added = store.add_person_references(
            name, ENGINE, [(ref.sha256, ref.embedding) for ref in references], public_figure, list(accounts))
        audit.append(store, actor, "enroll", f"person:{person.id}",
                     detail=json.dumps({"references_added": added, "public_figure": person.public_figure}))
    if added:
        store.bump_gallery_version()
    started = time.perf_counter()
    affected = Decider(store, policy, ENGINE, actor=actor).match_new_references(person.id)
    seconds = time.perf_counter() - started
    matched = store.db.execute("SELECT count(*) FROM matches WHERE person_id = ?", [person.id]).fetchone()[0]
    return Enrolled(person, added, matched, len(affected), seconds, store.files_needing_rescan())


def set_opted_out(store: Store, policy: Policy, person: Person, opted_out: bool, actor: str) -> bool:
    """Resume (True) or pause (False) a person's opt-out; True when it changed."""
    with store.write():
        changed = store.set_opted_out(person.id, opted_out)
        if changed:
            audit.append(store, actor, "opt-out" if opted_out else "opt-in", f"person:{person.id}")
    if changed:
        Decider(store, policy, ENGINE, actor=actor).redecide_person(person.id)
    return changed


def forget(store: Store, policy: Policy, person: Person, actor: str) -> dict[str, int]:
    """Erase everything about a person, then compact the file so no erased byte remains.

    The audit trail keeps only that person:<id> was erased, and the counts.
    """
    with store.write():
        counts, affected = store.erase_person(person.id)
        audit.append(store, actor, "erasure", f"person:{person.id}", detail=json.dumps(counts))
    store.bump_gallery_version()
    Decider(store, policy, ENGINE, actor=actor).update(affected)
    store.compact()
    return counts


def grant_consent(store: Store, policy: Policy, person: Person, actor: str, media_sha256: str | None = None,
                  uploader: str | None = None, until: str | None = None) -> int:
    """Record a consent (one media item, one uploader, until a date, or a combination); its id."""
    if not (media_sha256 or uploader or until):
        raise ActionError("say what the consent covers: a media item, an uploader and/or an end date")
    with store.write():
        consent_id = store.add_consent(person.id, media_sha256, uploader, until)
        audit.append(store, actor, "consent-grant", f"person:{person.id}", new=f"consent:{consent_id}",
                     detail=json.dumps({"media_sha256": media_sha256, "uploader": uploader, "until": until}))
    Decider(store, policy, ENGINE, actor=actor).redecide_person(person.id)
    return consent_id


def revoke_consent(store: Store, policy: Policy, consent_id: int, actor: str, person_id: int | None = None) -> int:
    """End an active consent (only one of ``person_id``'s when given); the person it was of."""
    with store.write():
        owner = store.revoke_consent(consent_id, person_id)
        if owner is None:
            raise ActionError(f"no active consent with id {consent_id}")
        audit.append(store, actor, "consent-revoke", f"person:{owner}", old=f"consent:{consent_id}")
    Decider(store, policy, ENGINE, actor=actor).redecide_person(owner)
    return owner


def consents(store: Store, person_id: int) -> list[dict]:
    """A person's consents, each with its status: active, expired or revoked."""
    day = decide.today()  # through the module: tests move the clock there
    return [
        {**row, "status": "revoked" if row["revoked_at"] else "expired" if row["until"] and row["until"] < day
         else "active"}
        for row in store.consents_of(person_id)
    ]


def decide_review(store: Store, policy: Policy, item: str, verdict: str, reviewer: str, note: str | None) -> dict:
    """A reviewer's verdict (``remove`` or ``keep``) on a pending item; the decision row it was about.

    The verdict stands while the item's facts are unchanged.
    """
    if verdict not in ("remove", "keep"):
        raise ActionError("the verdict is remove or keep")
    rows = list(store.db.query("SELECT * FROM decisions WHERE item = ?", [item]))
    if not rows:
        raise ActionError(f"no item {item!r} (it may have been decided again since the queue was shown)")
    row = rows[0]
    if row["action"] != "review":
        raise ActionError(f"item {item} is not waiting for review (decision: {row['action']}, rule {row['rule']})")
    actor = f"reviewer:{reviewer}"
    decider = Decider(store, policy, ENGINE, actor=actor)
    sha256, facts = decider.item_facts(row["path"], row["face_id"])
    with store.write():
        store.set_review(row["path"], row["person_id"], verdict, reviewer, note, facts_sha256(facts))
        audit.append(store, actor, "review", f"item:{item}", old="review",
                     new="remove" if verdict == "remove" else "allow", rule="reviewer", detail=note)
        decider.redecide([sha256])
    return row


def pending_reviews(store: Store, person_id: int | None = None) -> list[dict]:
    """Items waiting for a reviewer, with the face box, distance, rule and reason."""
    where, params = "", []
    if person_id is not None:
        where, params = "AND d.person_id = ?", [person_id]
    items = []
    for row in store.db.query(
        "SELECT d.item, d.path, d.person_id, d.rule, d.reason, p.name, m.distance, fa.top, fa.right, fa.bottom, "
        "fa.left, fa.frame_time, fa.sha256 FROM decisions d JOIN people p ON p.id = d.person_id "
        "JOIN matches m ON m.face_id = d.face_id JOIN faces fa ON fa.id = d.face_id "
        f"WHERE d.action = 'review' {where} ORDER BY d.path, p.name",
        params,
    ):
        times = [r["frame_time"] for r in store.db.query(
            "SELECT fa.frame_time FROM faces fa JOIN matches m ON m.face_id = fa.id "
            "WHERE fa.sha256 = ? AND m.person_id = ? AND fa.frame_time IS NOT NULL ORDER BY fa.frame_time",
            [row["sha256"], row["person_id"]])]
        items.append({
            "id": row["item"], "path": row["path"], "person": row["name"], "distance": round(row["distance"], 4),
            "box": [row["top"], row["right"], row["bottom"], row["left"]], "frame_times": times,
            "rule": row["rule"], "reason": row["reason"],
        })
    return items
