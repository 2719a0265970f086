"""Deciding: from the stored facts of each item (a person seen in a file) to its decision.

Pure functions over the dataclasses of :mod:`matcher.model`: the service that
reads the facts from the store and writes the decisions back is
:mod:`matcher.services.deciding`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from matcher.model import Consent, DecisionRecord, MatchFact, NewAuditEntry, Person, Review
from matcher.policy import Decision, Facts, Limits, Policy


def item_id(path: str, person_id: int) -> str:
    """The stable id of one item (a person seen in a file): the review queue's handle."""
    return hashlib.sha256(f"{path}\0{person_id}".encode("utf-8", "surrogateescape")).hexdigest()[:12]


# Facts added after verdicts were first given, with the value they had for everyone before:
# left out of the hash at that value, so a verdict given before the fact existed still stands.
FACTS_ADDED_LATER = {"verified": True}
# The face's quality is the face's: the same face has the same quality (its distance, which
# is hashed, says whether it is the same face), and its band shows in ``match``, also hashed.
FACTS_OF_THE_FACE = ("face_width", "sharpness", "brightness", "band")
# Facts about other items: a verdict given on this item, having seen it, stands whatever a
# reviewer later rules on a face elsewhere (a look-alike cleared there).
FACTS_OF_OTHER_ITEMS = ("look_alike",)


def facts_sha256(facts: Facts) -> str:
    """What a reviewer decided on: their verdict stands while this stays the same.

    The distance is rounded so that re-matching the same faces does not count as new facts.
    """
    values = asdict(facts)
    values["distance"] = round(values["distance"], 4)
    values["context"] = sorted(values["context"])
    for name, earlier in FACTS_ADDED_LATER.items():
        if values[name] == earlier:
            del values[name]
    for name in (*FACTS_OF_THE_FACE, *FACTS_OF_OTHER_ITEMS):
        del values[name]
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


VERDICTS = {  # a reviewer's verdict: the action it takes, and how the decision's reason says it
    "remove": ("remove", "remove"),
    "keep": ("allow", "keep"),
    "not-them": ("allow", "not them (a look-alike)"),
}


def shown_version(face_id: int, distance: float, rule: str, reason: str) -> str:
    """What the review queue showed of an item: the face, its distance, the rule and the reason.
    A verdict given on what was shown is refused once the item has been decided again on something
    else (another face after a rescan, a new reference, another rule): the item id stays the same."""
    shown = json.dumps([face_id, round(distance, 4), rule, reason])
    return hashlib.sha256(shown.encode("utf-8", "surrogateescape")).hexdigest()[:12]


def not_them_sha256(facts: Facts, face_id: int) -> str:
    """What a "not them" verdict was given on: this face of the file, the person, and that it was
    only a possible match (who a face shows does not change with a consent, an opt-in or a flood
    guard; a rescan, or the face becoming a confident match, ends the verdict)."""
    return hashlib.sha256(json.dumps([facts.person, face_id, facts.match]).encode()).hexdigest()


def verdict_sha256(verdict: str, facts: Facts, face_id: int) -> str:
    """The facts a verdict on the face ``face_id`` rests on: it stands while this stays the same."""
    return not_them_sha256(facts, face_id) if verdict == "not-them" else facts_sha256(facts)


def reviewer_decision(review: Review) -> Decision:
    action, said = VERDICTS[review.verdict]
    note = f": {review.note}" if review.note else ""
    return Decision(action, "reviewer", f"{said} decided by reviewer {review.reviewer}{note}")


@dataclass
class Snapshot:
    """What decisions rest on besides the match itself: people, consents, tripped flood guards, the day."""

    policy: Policy
    people: dict[int, Person]
    consents: list[Consent]
    floods: set[tuple[int, int]]
    today: str

    def limits(self, match: MatchFact) -> Limits:
        """The thresholds for this match's face (its band) and person (their own)."""
        return self.policy.limits(match.face_width, match.sharpness, match.brightness, match.frontal,
                                  match.lower_texture, person=own_limits(self.people[match.person_id], self.policy))

    def band_match(self, match: MatchFact) -> float:
        """The match threshold of this face's quality band (the general one outside every band)."""
        return self.policy.limits(match.face_width, match.sharpness, match.brightness, match.frontal,
                                  match.lower_texture).match

    def strength(self, match: MatchFact) -> str | None:
        return self.policy.strength(match.distance, self.limits(match))

    def facts(self, match: MatchFact) -> Facts:
        person = self.people[match.person_id]
        limits = self.limits(match)
        return Facts(
            person=person.name,
            distance=match.distance,
            match=self.policy.strength(match.distance, limits),
            consent=any(c.covers(person.id, match.sha256, match.uploader, self.today) for c in self.consents),
            self_posted=match.uploader is not None and match.uploader in person.accounts,
            public_figure=person.public_figure,
            opted_out=person.opted_out,
            verified=person.verified,
            flood=(person.id, match.scanned_in) in self.floods,
            flood_limit=self.policy.flood_limit,
            uploader=match.uploader,
            context=frozenset(match.context),
            face_width=match.face_width,
            sharpness=match.sharpness,
            brightness=match.brightness,
            band=limits.band,
            look_alike=self.policy.is_look_alike(match.distance, match.ruled_out_distance, self.band_match(match)),
        )


def own_limits(person: Person, policy: Policy) -> Limits | None:
    """A person's own thresholds (a hub's, tighter), when they have them."""
    if person.match_threshold is None and person.review_threshold is None:
        return None
    return Limits(person.match_threshold if person.match_threshold is not None else policy.match,
                  person.review_threshold if person.review_threshold is not None else policy.review)


@dataclass
class Outcome:
    """Decisions to store, the audit entries of those that changed, and reviews that no longer hold."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    audit: list[NewAuditEntry] = field(default_factory=list)
    expired_reviews: list[tuple[str, int]] = field(default_factory=list)


def strongest_matches(snapshot: Snapshot, matches: list[MatchFact]) -> dict[tuple[str, int], MatchFact]:
    """Per item (path, person id), the match of the person's face in the file that is the strongest
    under its own band's thresholds (confident before possible), the closest of equals: one face
    seen clearly decides, not a closer one seen only in part (a covered face, a blurred frame)."""
    rank = {"confident": 0, "possible": 1, None: 2}
    best: dict[tuple[str, int], tuple[tuple[int, float], MatchFact]] = {}
    for match in matches:
        key = (match.path, match.person_id)
        order = (rank[snapshot.strength(match)], match.distance)
        if key not in best or order < best[key][0]:
            best[key] = (order, match)
    return {key: match for key, (_, match) in best.items()}


def decide_items(snapshot: Snapshot, matches: list[MatchFact], old: dict[tuple[str, int], DecisionRecord],
                 reviews: dict[tuple[str, int], Review], actor: str, now: str) -> Outcome:
    """One decision per item of ``matches``, made on the person's strongest face in the file.

    A reviewer's verdict stands while the facts it was given on hold; when
    they change it expires, and the rules decide again. Every decision that
    differs from ``old`` (and every old one no longer made) gets an audit entry.
    """
    policy, outcome = snapshot.policy, Outcome()
    strongest = strongest_matches(snapshot, matches)
    for key, match in strongest.items():
        facts = snapshot.facts(match)
        decision = policy.decide(facts)
        review = reviews.get(key)
        if review is not None:
            if review.facts_sha256 == verdict_sha256(review.verdict, facts, match.face_id):
                decision = reviewer_decision(review)
            else:
                outcome.expired_reviews.append(key)
        item = item_id(*key)
        outcome.decisions.append(DecisionRecord(match.path, match.person_id, match.face_id, item, decision.action,
                                                decision.rule, decision.reason, policy.sha256, now))
        before = old.get(key)
        if before is None or (before.action, before.rule) != (decision.action, decision.rule):
            outcome.audit.append(_change(actor, item, key, before, decision, policy.sha256))
    for key, before in old.items():
        if key not in strongest:  # the person is no longer seen there (a rescan, a new closer match)
            outcome.audit.append(_change(actor, before.item or item_id(*key), key, before, None, policy.sha256))
    for key, review in reviews.items():
        if key not in strongest and review.verdict == "not-them":  # its face is no longer decided on: no evidence
            outcome.expired_reviews.append(key)
    for path, person_id in outcome.expired_reviews:
        outcome.audit.append(NewAuditEntry(actor, "review-expired", f"item:{item_id(path, person_id)}",
                                           detail="the facts the reviewer decided on have changed"))
    return outcome


def _change(actor: str, item: str, key: tuple[str, int], before: DecisionRecord | None, decision: Decision | None,
            policy_sha256: str) -> NewAuditEntry:
    path, person_id = key
    return NewAuditEntry(
        actor=actor,
        event="decision",
        subject=f"item:{item}",
        old=before.action if before else None,
        new=decision.action if decision else None,
        rule=decision.rule if decision else None,
        policy_sha256=policy_sha256,
        detail=json.dumps({"path": path, "person": f"person:{person_id}"}, ensure_ascii=False),
        about=person_id,
    )
