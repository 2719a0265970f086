"""The review queue: items (a person seen in a file) a person must decide, and their verdicts."""

from __future__ import annotations

from matcher.decide import VERDICTS, shown_version, verdict_sha256
from matcher.model import DecisionRecord, MatchFact, NewAuditEntry, PendingReview, Review
from matcher.policy import Facts
from matcher.services.deciding import Decider
from matcher.services.errors import ActionError
from matcher.services.session import Session
from matcher.store import Store


def decide(session: Session, item: str, verdict: str, reviewer: str, note: str | None,
           seen: str | None = None) -> DecisionRecord:
    """A reviewer's verdict on a pending item; the decision it was about.

    ``remove``, ``keep`` (the media may stay: public interest, consent shown...) or ``not-them``
    (the face is not this person: only for a possible match). Remove and keep stand while the
    item's facts are unchanged; not-them while the face is, and is only a possible match (who
    someone is does not change with a consent). The face ruled not them then clears that
    look-alike elsewhere: the person's other items are decided again, and those nearer it than
    the person go by the rules' look_alike condition.

    ``seen``: the item's ``version`` in the queue the reviewer decided from; the verdict is refused
    if the item was decided again since on something else (the item id stays the same).
    """
    if verdict not in VERDICTS:
        raise ActionError(f"the verdict is one of {', '.join(VERDICTS)}")
    store = session.store
    actor = f"reviewer:{reviewer}"
    decider = session.decider(actor)
    with store.write():
        # Checked in the transaction that writes the verdict, the facts held: what was shown is
        # compared with what stands when the verdict lands, not a moment before.
        decider.hold_current_facts()
        decision, match, facts = _standing(store, decider, item, verdict, seen)
        store.decisions.set_review(Review(decision.path, decision.person_id, verdict, reviewer, note,
                                          verdict_sha256(verdict, facts, match.face_id)))
        store.audit.append([NewAuditEntry(actor, "review", f"item:{item}", old="review", new=VERDICTS[verdict][0],
                                          rule="reviewer", detail=_detail(verdict, note), about=decision.person_id)])
        if verdict == "not-them":
            decider.redecide_person(decision.person_id)  # takes the new ruled face in (a change of the facts)
        else:
            decider.redecide([match.sha256])
    return decision


def _standing(store: Store, decider: Decider, item: str, verdict: str,
              seen: str | None) -> tuple[DecisionRecord, MatchFact, Facts]:
    """The item's decision, match and facts as they stand, or why the verdict cannot be given."""
    decision = store.decisions.by_item(item)
    if decision is None:
        raise ActionError(f"no item {item!r} (it may have been decided again since the queue was shown)")
    if decision.action != "review":
        raise ActionError(f"item {item} is not waiting for review (decision: {decision.action}, rule {decision.rule})")
    match, facts = decider.item_facts(decision.path, decision.face_id)
    if seen is not None and seen != shown_version(decision.face_id, match.distance, decision.rule, decision.reason):
        raise ActionError(f"item {item} was decided again since it was shown (now [{decision.rule}] "
                          f"{decision.reason}): look at it again")
    if verdict == "not-them" and facts.match != "possible":
        # A confident match held for a person (an unchecked opt-out, news, a public figure...) is not
        # ruled out for good: if it is someone else, keep it; it comes back when the facts change.
        raise ActionError(f"item {item} is a confident match of {facts.person} (distance {facts.distance:.3f}): "
                          "'not them' is for possible matches; keep it if it may stay (it is reviewed again "
                          "when the facts change)")
    return decision, match, facts


def _detail(verdict: str, note: str | None) -> str | None:
    """The audit entry's detail: the note, and that the face was ruled not the person (remove and
    keep are told apart by the entry's ``new``; not-them and keep both allow)."""
    if verdict != "not-them":
        return note
    return f"not them: {note}" if note else "not them"


def pending(session: Session, person_id: int | None = None) -> list[PendingReview]:
    """Items waiting for a reviewer (only of ``person_id`` when given)."""
    return session.store.decisions.pending_reviews(person_id)
