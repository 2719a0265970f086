"""The shared policy rules: shipped decisions, and malformed files refused with their line."""

import pytest

from helpers import store_created
from matcher.policy import Facts, Limits, PolicyError, load_policy, parse_policy


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def facts(**changes):
    base = dict(person="Ann", distance=0.3, match="confident", verified=True)
    base.update(changes)
    return Facts(**base)


@pytest.mark.parametrize(
    "changes, action, rule",
    [
        ({}, "remove", "no-consent"),
        ({"consent": True}, "allow", "consent"),
        ({"self_posted": True, "uploader": "ann-1"}, "allow", "self-posted"),
        ({"public_figure": True}, "review", "public-figure"),
        ({"context": frozenset({"news"})}, "review", "public-interest-context"),
        ({"context": frozenset({"crisis", "other"})}, "review", "public-interest-context"),
        ({"context": frozenset({"holiday"})}, "remove", "no-consent"),
        ({"distance": 0.58, "match": "possible"}, "review", "possible-match"),
        # Consent outranks everything else.
        ({"consent": True, "context": frozenset({"news"}), "match": "possible"}, "allow", "consent"),
        # Nobody checked the opt-out came from the person shown: a person looks first.
        ({"verified": False}, "review", "unverified-opt-out"),
        ({"verified": False, "distance": 0.58, "match": "possible"}, "review", "possible-match"),
        ({"verified": False, "consent": True}, "allow", "consent"),
        # The same look-alike a reviewer ruled not her: a possible match is cleared, a confident one is not.
        ({"look_alike": True, "distance": 0.58, "match": "possible"}, "allow", "look-alike-cleared"),
        ({"look_alike": True, "public_figure": True, "distance": 0.58, "match": "possible"}, "allow",
         "look-alike-cleared"),
        ({"look_alike": True}, "review", "look-alike-confident"),
        ({"look_alike": True, "consent": True}, "allow", "consent"),
    ],
)
def test_shipped_rules_encode_the_private_media_policy(policy, changes, action, rule):
    decision = policy.decide(facts(**changes))
    assert (decision.action, decision.rule) == (action, rule)
    assert "Ann" in decision.reason


def test_thresholds_bound_match_strength(policy):
    assert policy.match < policy.review
    assert policy.strength(policy.match) == "confident"
    assert policy.strength((policy.match + policy.review) / 2) == "possible"
    assert policy.strength(policy.review + 0.01) is None


GOOD = b"""
[thresholds]
match = 0.5
review = 0.6

[[rules]]
id = "possible"
when = { match = "possible" }
action = "review"
reason = "maybe {person}"

[[rules]]
id = "unchecked"
when = { verified = false }
action = "review"
reason = "{person} is not verified"

[[rules]]
id = "sure"
when = { match = "confident", verified = true }
action = "remove"
reason = "{person} at {distance:.2f}"
"""


def test_a_minimal_rules_file_loads():
    policy = parse_policy(GOOD, "rules.toml")
    assert [r.id for r in policy.rules] == ["possible", "unchecked", "sure"]
    assert policy.decide(facts(distance=0.25)).reason == "Ann at 0.25"


def test_a_look_alike_is_within_the_threshold_of_a_face_ruled_not_them_and_nearer_it():
    assert parse_policy(GOOD, "rules.toml").look_alike is None  # no threshold: never a look-alike
    assert not parse_policy(GOOD, "rules.toml").is_look_alike(0.60, 0.1, 0.5)
    policy = parse_policy(GOOD.replace(b"match = 0.5", b"match = 0.5\nlook_alike = 0.45"), "rules.toml")
    assert policy.look_alike == 0.45
    assert policy.is_look_alike(0.60, 0.45, 0.5)
    assert not policy.is_look_alike(0.60, 0.46, 0.5)  # beyond the threshold
    assert not policy.is_look_alike(0.40, 0.42, 0.5)  # nearer the person than the ruled face
    assert not policy.is_look_alike(0.60, None, 0.5)  # no face ruled
    assert not policy.is_look_alike(0.60, 0.44, 0.43)  # beyond what the face's band trusts
    assert not policy.is_look_alike(0.60, 0.01, 0.0)  # a band that trusts no match never clears one


@pytest.mark.parametrize(
    "old, new, line, words",
    [
        (b'review = 0.6', b'review = ', 4, "invalid TOML"),
        (b'action = "review"', b'action = "delete"', 9, "action must be one of"),
        (b'when = { match = "possible" }', b'when = { mood = "bad" }', 8, "unknown condition 'mood'"),
        (b'when = { match = "confident", verified = true }', b"when = { consent = false }", 21, "must require match"),
        (b'when = { match = "confident", verified = true }', b'when = { match = "confident" }', 21,
         "must require verified = true"),
        (b'reason = "maybe {person}"', b'reason = "maybe {name}"', 10, "reason uses {name}"),
        (b'id = "sure"', b'id = "possible"', 19, "used twice"),
        (b"match = 0.5", b"match = 0.7", 3, "must not be above"),
        (b"match = 0.5", b'match = "close"', 3, "must be a number"),
        (b"match = 0.5", b"match = 0.5\nlook_alike = 2.5", 4, "thresholds.look_alike must be a face distance"),
        (b"match = 0.5", b"match = 0.5\nlook_alike = true", 4, "thresholds.look_alike must be a face distance"),
        (b"match = 0.5", b"match = 0.5\nlook_alike = 0.52", 4, "must not be above thresholds.match"),
        (b'when = { match = "possible" }', b'when = { look_alike = "yes" }', 8, "look_alike must be true or false"),
    ],
)
def test_malformed_rules_are_refused_with_line_and_problem(old, new, line, words):
    assert old in GOOD
    with pytest.raises(PolicyError) as caught:
        parse_policy(GOOD.replace(old, new), "rules.toml")
    message = str(caught.value)
    assert message.startswith(f"rules.toml:{line}:"), message
    assert words in message


def test_rules_must_cover_every_match():
    only_possible = GOOD[: GOOD.index(b'[[rules]]\nid = "unchecked"')]
    with pytest.raises(PolicyError, match="no rule applies to some matched faces"):
        parse_policy(only_possible, "rules.toml")
    # Confident matches of verified people only: those of unverified people would fall through.
    no_unverified = GOOD.replace(b'when = { verified = false }', b'when = { verified = false, public_figure = true }')
    with pytest.raises(PolicyError, match="verified or not"):
        parse_policy(no_unverified, "rules.toml")


def test_every_command_refuses_a_malformed_rules_file(tmp_path, cli):
    bad = tmp_path / "rules.toml"
    bad.write_bytes(GOOD.replace(b'action = "review"', b'action = "maybe"'))
    cli.policy = bad
    for command in (["people"], ["report"], ["scan", str(tmp_path)]):
        result = cli(*command, ok=False)
        assert result.exit_code == 1
        assert f"{bad}:9: rule 'possible': action must be one of" in result.output
    assert not store_created(cli.db)  # refused before touching the store


# -- the face's quality: conditions, bands, a person's own thresholds ------------------------------

QUALITY_RULES = GOOD.replace(b'''[[rules]]
id = "sure"''', b'''[[rules]]
id = "too-small"
when = { face_width_below = 40 }
action = "review"
reason = "{person}: a face of {face_width} px"

[[rules]]
id = "too-dark"
when = { brightness_below = 30, sharpness_at_least = 10 }
action = "review"
reason = "{person}: brightness {brightness}, sharpness {sharpness}"

[[rules]]
id = "in-band"
when = { band_in = ["blurred"], match = "confident" }
action = "review"
reason = "{person} in band {band}"

[[rules]]
id = "sure"''').replace(b"review = 0.6\n", b'''review = 0.6

[[thresholds.bands]]
id = "dark"
brightness_below = 60
match = 0.4
review = 0.6

[[thresholds.bands]]
id = "blurred"
sharpness_below = 15
width_below = 80
match = 0.45
review = 0.55
''')


def test_rules_may_test_the_faces_quality_and_unknown_quality_never_satisfies_them():
    policy = parse_policy(QUALITY_RULES, "rules.toml")
    assert policy.decide(facts(face_width=30)).reason == "Ann: a face of 30 px"
    assert policy.decide(facts(face_width=40)).rule == "sure"
    assert policy.decide(facts(brightness=20.0, sharpness=12.0)).reason == "Ann: brightness 20.0, sharpness 12.0"
    assert policy.decide(facts(brightness=20.0, sharpness=9.0)).rule == "sure"  # every condition must hold
    assert policy.decide(facts(brightness=20.0)).rule == "sure"  # sharpness not measured (an older face)
    assert policy.decide(facts(band="blurred")).reason == "Ann in band blurred"
    assert policy.decide(facts(band=None)).rule == "sure"


def test_the_tightest_thresholds_of_every_band_a_face_is_in_apply():
    policy = parse_policy(QUALITY_RULES, "rules.toml")
    assert [b.id for b in policy.bands] == ["dark", "blurred"]
    general = policy.limits(100, 50.0, 120.0)
    assert (general.match, general.review, general.band) == (0.5, 0.6, None)
    assert policy.limits(100, 50.0, 59.9).band == "dark"
    assert policy.limits(100, 50.0, None).band is None  # brightness unknown: never under a limit
    assert policy.limits(79, 14.9, 120.0).band == "blurred" and policy.limits(80, 14.9, 120.0).band is None
    both = policy.limits(79, 14.9, 10.0)  # dark and blurred: the stricter of each
    assert (both.match, both.review, both.band) == (0.4, 0.55, "dark")
    dark = policy.limits(100, 50.0, 10.0)
    assert policy.strength(0.42, dark) == "possible" and policy.strength(0.42, general) == "confident"
    # A person's own thresholds apply where tighter than the band's.
    own = policy.limits(100, 50.0, 10.0, person=Limits(0.45, 0.5))
    assert (own.match, own.review, own.band) == (0.4, 0.5, "dark")


def test_a_band_for_faces_not_seen_frontally_holds_only_those():
    rules = QUALITY_RULES.replace(b"\n[[thresholds.bands]]\nid = \"dark\"", b'''
[[thresholds.bands]]
id = "unmeasured"
width_below = 28
match = 0.0
review = 0.6

[[thresholds.bands]]
id = "not-frontal"
frontal = false
match = 0.0
review = 0.5

[[thresholds.bands]]
id = "dark"''', 1)
    policy = parse_policy(rules, "rules.toml")
    assert policy.limits(100, 50.0, 120.0, frontal=False) == Limits(0.0, 0.5, "not-frontal")
    assert policy.limits(100, 50.0, 120.0, frontal=True).band is None
    assert policy.limits(100, 50.0, 120.0).band is None  # faces stored before the fact: HOG found them all
    assert policy.strength(0.45, policy.limits(100, 50.0, 120.0, frontal=False)) == "possible"
    assert policy.strength(0.52, policy.limits(100, 50.0, 120.0, frontal=False)) is None
    # Also tiny: both never confident; the tighter review names the band, whatever the file's order.
    assert policy.limits(20, 50.0, 120.0, frontal=False) == Limits(0.0, 0.5, "not-frontal")
    assert policy.strength(0.0, policy.limits(100, 50.0, 120.0, frontal=False)) == "possible"  # match 0: never


@pytest.mark.parametrize(
    "band, words",
    [
        (b'id = "x"\nmatch = 0.4\nreview = 0.5', "say which faces it is for"),
        (b'id = "x"\nfrontal = "no"\nmatch = 0.4\nreview = 0.5', "frontal must be true or false"),
        (b'id = "x"\nwidth_below = 50\nmatch = 0.55\nreview = 0.5', "match <= review"),
        (b'id = "x"\nwidth_below = 50\nmatch = 0.4\nreview = 0.7', "a band only tightens"),
        (b'id = "x"\nwidth_below = 50\nmatch = 0.52\nreview = 0.58', "match <= thresholds.match"),
        (b'id = "x"\nwidth_below = -1\nmatch = 0.4\nreview = 0.5', "width_below must be a number, 0 or more"),
        (b'id = "x"\nlower_texture_below = "low"\nmatch = 0.0\nreview = 0.5', "lower_texture_below must be a number"),
        (b'id = "x"\nheight_below = 50\nmatch = 0.4\nreview = 0.5', "unknown key 'height_below'"),
        (b'id = "dark"\nwidth_below = 50\nmatch = 0.4\nreview = 0.5', "its own 'id'"),
    ],
)
def test_malformed_bands_are_refused(band, words):
    rules = QUALITY_RULES.replace(b"\n[[rules]]", b"\n[[thresholds.bands]]\n" + band + b"\n\n[[rules]]", 1)
    with pytest.raises(PolicyError, match=words):
        parse_policy(rules, "rules.toml")


def test_shipped_bands_never_trust_a_face_too_small_dark_or_blurred_as_a_clear_one(policy):
    assert policy.strength(0.3, policy.limits(27, 100.0, 120.0)) == "possible"  # under 28 px: never confident
    assert policy.strength(0.5, policy.limits(39, 100.0, 120.0)) == "confident"  # 28-39 px: 0.50 at most
    assert policy.strength(0.52, policy.limits(39, 100.0, 120.0)) == "possible"
    assert policy.strength(0.5, policy.limits(100, 100.0, 120.0)) == "confident"
    assert policy.strength(0.5, policy.limits(100, 100.0, 40.0)) == "possible"  # dark
    assert policy.strength(0.3, policy.limits(35, 100.0, 40.0)) == "possible"  # small and dark: never measured
    assert policy.strength(0.52, policy.limits(100, 10.0, 120.0)) == "possible"  # blurred
    for width, sharpness, brightness in ((27, 100.0, 120.0), (39, 100.0, 120.0), (100, 100.0, 40.0),
                                         (100, 10.0, 120.0)):
        assert policy.limits(width, sharpness, brightness).review == policy.review  # review all the same



def test_shipped_rules_judge_a_covered_face_hog_saw_whole_as_one_not_seen_frontally(policy):
    limits = policy.limits(120, 100.0, 120.0, True, 0.05)
    assert limits == Limits(0.0, 0.55, "covered") and policy.strength(0.3, limits) == "possible"
    assert policy.strength(0.56, limits) is None
    assert policy.limits(120, 100.0, 120.0, True, 0.3).band is None
    assert policy.limits(120, 100.0, 120.0, True, None).band is None  # stored before it was measured: unknown
    decision = policy.decide(facts(distance=0.3, match="possible", band="covered"))
    assert (decision.action, decision.rule) == ("review", "not-seen-frontally")


def test_shipped_rules_never_remove_a_face_not_seen_frontally_and_say_why_it_is_reviewed(policy):
    limits = policy.limits(120, 100.0, 120.0, frontal=False)
    assert limits.band == "not-frontal" and policy.strength(0.3, limits) == "possible"
    assert policy.strength(0.56, limits) is None  # beyond its review limit: no match at all
    decision = policy.decide(facts(distance=0.3, match="possible", band="not-frontal"))
    assert (decision.action, decision.rule) == ("review", "not-seen-frontally")
    assert "not seen whole" in decision.reason


def test_a_flood_sends_weaker_matches_to_review_and_lets_strong_ones_stand(policy):
    assert policy.decide(facts(flood=True, distance=0.5)).rule == "flood-guard"
    assert policy.decide(facts(flood=True, distance=0.6, match="possible")).rule == "flood-guard"
    assert (policy.decide(facts(flood=True, distance=0.4)).action,
            policy.decide(facts(flood=True, distance=0.4)).rule) == ("remove", "no-consent")
