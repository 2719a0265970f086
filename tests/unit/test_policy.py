"""The shared policy rules: shipped decisions, and malformed files refused with their line."""

import pytest

from matcher.policy import Facts, PolicyError, load_policy, parse_policy


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
    assert not cli.db.exists()  # refused before touching the store
