"""The review queue: items (a person seen in a file) a person must decide, and their verdicts."""

from __future__ import annotations

from matcher.decide import facts_sha256
from matcher.model import DecisionRecord, NewAuditEntry, PendingReview, Review
from matcher.services.errors import ActionError
from matcher.services.session import Session


def decide(session: Session, item: str, verdict: str, reviewer: str, note: str | None) -> DecisionRecord:
    """A reviewer's verdict (``remove`` or ``keep``) on a pending item; the decision it was about.

    The verdict stands while the item's facts are unchanged.
    """
    if verdict not in ("remove", "keep"):
        raise ActionError("the verdict is remove or keep")
    store = session.store
    decision = store.decisions.by_item(item)
    if decision is None:
        raise ActionError(f"no item {item!r} (it may have been decided again since the queue was shown)")
    if decision.action != "review":
        raise ActionError(f"item {item} is not waiting for review (decision: {decision.action}, rule {decision.rule})")
    actor = f"reviewer:{reviewer}"
    decider = session.decider(actor)
    match, facts = decider.item_facts(decision.path, decision.face_id)
    with store.write():
        store.decisions.set_review(Review(decision.path, decision.person_id, verdict, reviewer, note,
                                          facts_sha256(facts)))
        store.audit.append([NewAuditEntry(actor, "review", f"item:{item}", old="review",
                                          new="remove" if verdict == "remove" else "allow", rule="reviewer",
                                          detail=note, about=decision.person_id)])
        decider.redecide([match.sha256])
    return decision


def pending(session: Session, person_id: int | None = None) -> list[PendingReview]:
    """Items waiting for a reviewer (only of ``person_id`` when given)."""
    return session.store.decisions.pending_reviews(person_id)
