"""Deciding from stored facts, as pure functions: no store, no model."""

from dataclasses import replace

from matcher.decide import Snapshot, decide_items, facts_sha256, item_id, strongest_matches, verdict_sha256
from matcher.model import Consent, DecisionRecord, MatchFact, Person, Review
from matcher.policy import load_policy

POLICY = load_policy()
ANN = Person(1, "Ann", public_figure=False, accounts=["ann-account"], verified_by="operator")


def match(path="/m/a.jpg", face_id=1, distance=0.3, uploader="bob", context=()):
    return MatchFact(path, "sha-" + path, uploader, context, 1, face_id, 1, distance)


def snapshot(consents=(), floods=()):
    return Snapshot(POLICY, {1: ANN}, list(consents), set(floods), "2026-11-25")


def test_one_decision_per_person_in_a_file_made_on_the_closest_face():
    matches = [match(face_id=1, distance=0.5), match(face_id=2, distance=0.2), match(face_id=3, distance=0.58)]
    assert strongest_matches(snapshot(), matches)[("/m/a.jpg", 1)].face_id == 2
    outcome = decide_items(snapshot(), matches, {}, {}, "system", "now")
    [decision] = outcome.decisions
    assert (decision.face_id, decision.action, decision.rule) == (2, "remove", "no-consent")
    assert decision.item == item_id("/m/a.jpg", 1) and len(decision.item) == 12
    [entry] = outcome.audit
    assert (entry.event, entry.old, entry.new, entry.subject) == ("decision", None, "remove", f"item:{decision.item}")


def test_a_face_seen_clearly_decides_over_a_closer_one_seen_only_in_part():
    """Two faces of Ann in one file: a covered one (not seen frontally: never confident) closer than
    a clear one. The clear one shows her: the item is removed on it, not sent to review."""
    covered = MatchFact("/m/a.jpg", "sha-a", "bob", (), 1, 1, 1, 0.40, face_width=120, sharpness=80.0,
                        brightness=130.0, frontal=False)
    clear = MatchFact("/m/a.jpg", "sha-a", "bob", (), 1, 2, 1, 0.45, face_width=120, sharpness=80.0,
                      brightness=130.0)
    [decision] = decide_items(snapshot(), [covered, clear], {}, {}, "system", "now").decisions
    assert (decision.face_id, decision.action, decision.rule) == (2, "remove", "no-consent")
    [alone] = decide_items(snapshot(), [covered], {}, {}, "system", "now").decisions
    assert (alone.action, alone.rule) == ("review", "not-seen-frontally")


def test_an_unverified_opt_out_is_reviewed_not_removed():
    unverified = Snapshot(POLICY, {1: Person(1, "Ann", False, [])}, [], set(), "2026-11-25")
    [decision] = decide_items(unverified, [match()], {}, {}, "system", "now").decisions
    assert (decision.action, decision.rule) == ("review", "unverified-opt-out")


def test_facts_of_consents_self_posting_and_floods():
    fact = match(uploader="carl")
    assert snapshot().facts(fact).match == "confident"
    assert snapshot([Consent(1, 1, None, "carl", None, "t")]).facts(fact).consent
    assert not snapshot([Consent(1, 1, None, "carl", "2026-11-24", "t")]).facts(fact).consent  # ended yesterday
    assert not snapshot([Consent(1, 1, None, "carl", None, "t", revoked_at="t")]).facts(fact).consent
    assert snapshot().facts(match(uploader="ann-account")).self_posted
    assert snapshot(floods=[(1, 1)]).facts(fact).flood


def test_unchanged_decisions_are_not_audited_and_vanished_ones_are():
    first = decide_items(snapshot(), [match()], {}, {}, "system", "now").decisions[0]
    old = {("/m/a.jpg", 1): first, ("/m/gone.jpg", 1): DecisionRecord("/m/gone.jpg", 1, 9, "x" * 12, "remove",
                                                                      "no-consent", "", "", "")}
    outcome = decide_items(snapshot(), [match()], old, {}, "system", "later")
    assert [(e.subject, e.old, e.new) for e in outcome.audit] == [(f"item:{'x' * 12}", "remove", None)]


def test_a_verdict_stands_while_its_facts_hold_and_expires_when_they_change():
    fact = match(context=("news",))
    facts = snapshot().facts(fact)
    assert POLICY.decide(facts).action == "review"
    review = Review("/m/a.jpg", 1, "remove", "rosa", "private", facts_sha256(facts))
    kept = decide_items(snapshot(), [fact], {}, {("/m/a.jpg", 1): review}, "system", "now")
    assert (kept.decisions[0].action, kept.decisions[0].rule) == ("remove", "reviewer")
    assert "rosa" in kept.decisions[0].reason and kept.expired_reviews == []
    # A consent changes the facts: the verdict expires and the rules decide again.
    changed = decide_items(snapshot([Consent(1, 1, None, "bob", None, "t")]), [fact], {},
                           {("/m/a.jpg", 1): review}, "system", "now")
    assert changed.decisions[0].rule == "consent" and changed.expired_reviews == [("/m/a.jpg", 1)]
    assert [e.event for e in changed.audit] == ["decision", "review-expired"]


def test_a_not_them_verdict_stands_while_the_face_does_and_a_look_alike_elsewhere_moves_no_verdict():
    fact = match(distance=0.58)
    facts = snapshot().facts(fact)
    review = Review("/m/a.jpg", 1, "not-them", "rosa", None, verdict_sha256("not-them", facts, fact.face_id))
    consented = snapshot([Consent(1, 1, None, "bob", None, "t")])
    kept = decide_items(consented, [fact], {}, {("/m/a.jpg", 1): review}, "system", "now")
    assert (kept.decisions[0].action, kept.decisions[0].rule, kept.expired_reviews) == ("allow", "reviewer", [])
    assert kept.decisions[0].reason == "not them (a look-alike) decided by reviewer rosa"
    assert decide_items(snapshot(), [match(distance=0.59)], {}, {("/m/a.jpg", 1): review}, "system",
                        "now").expired_reviews == []  # the same face, re-matched a little farther
    for changed in (match(face_id=2, distance=0.58), match(distance=0.40)):  # a rescan; now a confident match
        assert decide_items(snapshot(), [changed], {}, {("/m/a.jpg", 1): review}, "system",
                            "now").expired_reviews == [("/m/a.jpg", 1)]
    # A remove verdict, then a face elsewhere ruled not her lies near this one: the verdict on this item stands.
    near_ruled = snapshot().facts(replace(fact, ruled_out_distance=0.3))
    assert near_ruled.look_alike and facts_sha256(near_ruled) == facts_sha256(facts)


def test_a_look_alike_is_tested_within_the_faces_own_band():
    def facts(distance, ruled_out_distance, **quality):
        return snapshot().facts(MatchFact("/m/a.jpg", "sha-a", "bob", (), 1, 1, 1, distance,
                                          ruled_out_distance=ruled_out_distance, **quality))

    clear = dict(face_width=120, sharpness=80.0, brightness=130.0)
    assert facts(0.60, 0.49, **clear).look_alike
    assert not facts(0.60, 0.49, **{**clear, "brightness": 20.0}).look_alike  # band dark: within 0.48 only
    assert facts(0.60, 0.47, **{**clear, "brightness": 20.0}).look_alike
    assert not facts(0.50, 0.10, **clear, frontal=False).look_alike  # band not-frontal trusts no match: never
    assert not facts(0.45, 0.47, **clear).look_alike  # nearer the person than the ruled face


def test_the_faces_quality_and_the_persons_own_thresholds_set_the_match():
    def decided(people=None, **quality):
        fact = MatchFact("/m/a.jpg", "sha-a", "bob", (), 1, 1, 1, 0.5, **quality)
        return Snapshot(POLICY, people or {1: ANN}, [], set(), "2026-11-25").facts(fact)

    clear = decided(face_width=120, sharpness=80.0, brightness=130.0)
    assert (clear.match, clear.band, clear.brightness) == ("confident", None, 130.0)
    dark = decided(face_width=120, sharpness=80.0, brightness=20.0)
    assert (dark.match, dark.band, dark.brightness) == ("possible", "dark", 20.0)
    assert POLICY.decide(dark).rule == "possible-match"
    assert decided(face_width=120, sharpness=8.0, brightness=130.0).band == "blurred"
    hub = Person(1, "Ann", public_figure=False, accounts=[], verified_by="operator", match_threshold=0.47,
                 review_threshold=0.54)
    assert decided({1: hub}, face_width=120, sharpness=80.0, brightness=130.0).match == "possible"
    assert decided({1: hub}, face_width=120, sharpness=80.0, brightness=130.0).band is None
