"""A reviewer's "not them" verdict clears a look-alike, through the real services and store:
the same stranger uploaded again is allowed, the person's own faces are not, a confident
match is never hidden, only the face a reviewer saw is evidence, and a verdict that ends
takes its clearing with it. Made-up embeddings placed on purpose: the geometry is what is
tested (tests/e2e/test_shared_faces.py and bench/conditions.py --rule-background run real faces)."""

from pathlib import Path

import numpy as np
import pytest
from helpers import Cli, unit
from matcher.model import Box, FaceQuality, Observation, ObservedFace
from matcher.policy import load_policy
from matcher.references import ReferencePhoto
from matcher.services import ActionError, enrollment, open_session, people, reviews
from matcher.services.scanning import record_upload

ENGINE = "dlib_resnet_v1"
ANN = unit(1)


def _across(seed, *others) -> np.ndarray:
    """A unit direction orthogonal to ANN and to ``others``."""
    vector = np.random.default_rng(seed).normal(size=128)
    for other in (ANN, *others):
        vector -= vector.dot(other) * other
    return vector / np.linalg.norm(vector)


U = _across(2)
W = _across(3, U)


def around(distance, degrees):
    """A face ``distance`` from Ann, turned ``degrees`` about her from the ruled stranger's direction:
    two faces at 0.60 from her, 40 degrees apart, lie 0.41 from each other."""
    angle = np.radians(degrees)
    return (ANN + distance * (np.cos(angle) * U + np.sin(angle) * W)).astype(np.float32)


def face(embedding, frame_time=None, brightness=130.0):
    return ObservedFace(Box(0, 100, 100, 0), embedding, frame_time, FaceQuality(100, 80.0, brightness, 40.0, True))


def upload(session, name, *faces, sha256=None, kind="image"):
    record_upload(session, Observation(path=f"/m/{name}", engine=ENGINE, size=1, mtime_ns=1,
                                       sha256=sha256 or f"sha-{name}", kind=kind,
                                       format="jpeg" if kind == "image" else "mp4", width=400, height=200,
                                       faces=list(faces)))


def decided(db):
    return {name: (entry["decision"], entry["matches"][0]["rule"] if entry["matches"] else None)
            for name, entry in Cli(db).report().items()}


def queued(session):
    return sorted(item.path.rsplit("/", 1)[1] for item in reviews.pending(session))


def rule_not_them(session, name):
    item = next(item for item in reviews.pending(session) if item.path.endswith(f"/{name}"))
    reviews.decide(session, item.id, "not-them", "rosa", "her neighbour")


def enroll_ann(session, verified=True):
    return enrollment.enroll(session, "Ann", [ReferencePhoto("ann.jpg", "ref-ann", ANN)], "test",
                             verified_by="operator" if verified else None).person


def test_a_face_ruled_not_them_clears_that_look_alike_and_nothing_of_theirs(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        ann = enroll_ann(session)
        upload(session, "stranger.jpg", face(around(0.60, 0)))
        upload(session, "stranger-again.jpg", face(around(0.60, 40)))  # 0.41 from the ruled face
        upload(session, "ann-far.jpg", face(around(0.58, 180)))  # her own, as far from her, on the other side
        assert queued(session) == ["ann-far.jpg", "stranger-again.jpg", "stranger.jpg"]

        rule_not_them(session, "stranger.jpg")
        # After the verdict: a copy of the ruled file elsewhere; near the ruled face but confidently
        # her; near the cleared face only (a cleared face is no evidence: only what a reviewer saw).
        upload(session, "copy-of-stranger.jpg", face(around(0.60, 0)), sha256="sha-stranger.jpg")
        upload(session, "close-to-both.jpg", face(around(0.45, 0)))
        upload(session, "near-cleared.jpg", face(around(0.60, 80)))  # 0.41 from stranger-again, 0.77 from the ruled
        assert queued(session) == ["ann-far.jpg", "close-to-both.jpg", "near-cleared.jpg"]

        after = decided(db)
        assert after["stranger.jpg"] == ("allow", "reviewer")
        assert after["stranger-again.jpg"] == ("allow", "look-alike-cleared")  # re-decided at the verdict
        assert after["copy-of-stranger.jpg"] == ("allow", "look-alike-cleared")
        assert after["ann-far.jpg"] == ("review", "possible-match")
        assert after["close-to-both.jpg"] == ("review", "look-alike-confident")  # never removed, never hidden
        assert after["near-cleared.jpg"] == ("review", "possible-match")

        # Who someone is does not change with her opt-out: the verdict outlives a pause.
        people.set_opted_out(session, ann, False, "test")
        people.set_opted_out(session, ann, True, "test")
        assert decided(db)["stranger.jpg"] == ("allow", "reviewer")
        assert decided(db)["stranger-again.jpg"] == ("allow", "look-alike-cleared")


def stranger_ruled_and_the_look_alike_cleared(session):
    enroll_ann(session)
    upload(session, "stranger.jpg", face(around(0.60, 0)))
    upload(session, "stranger-again.jpg", face(around(0.60, 40)))  # 0.41 from the ruled face
    rule_not_them(session, "stranger.jpg")
    assert queued(session) == []


def test_a_verdict_that_ends_takes_its_clearing_with_it(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        stranger_ruled_and_the_look_alike_cleared(session)
        # A new reference of hers (0.43 from the first), 0.35 from the ruled face and 0.65 from the
        # other: the ruled face is now a confident match of hers, which "not them" does not outlive.
        second = (ANN + 0.35 * U - 0.25 * W).astype(np.float32)
        enrollment.enroll(session, "Ann", [ReferencePhoto("ann-2.jpg", "ref-ann-2", second)], "test")
    after = decided(db)
    assert after["stranger.jpg"] == ("remove", "no-consent")
    assert after["stranger-again.jpg"] == ("review", "possible-match")  # no longer cleared


def test_a_verdict_whose_face_is_gone_takes_its_clearing_with_it_once(db):
    """The ruled file changed (its new content shows no one): the verdict's face is gone, so what it
    cleared is queued again, and the audit trail says so once, without a detour."""
    with open_session(db, load_policy(), engine=ENGINE) as session:
        stranger_ruled_and_the_look_alike_cleared(session)
        upload(session, "stranger.jpg", sha256="sha-stranger-edited")  # the same path, no face now
        assert queued(session) == ["stranger-again.jpg"]
        trail = session.store.audit.entries()
    assert sum(entry.event == "review-expired" for entry in trail) == 1
    changes = [(entry.old, entry.new, entry.rule) for entry in trail
               if entry.event == "decision" and "stranger-again" in (entry.detail or "")]
    assert changes[-2:] == [("review", "allow", "look-alike-cleared"), ("allow", "review", "possible-match")]


def test_a_dark_ruled_face_vouches_only_within_its_bands_match(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        enroll_ann(session)
        upload(session, "dark-stranger.jpg", face(around(0.60, 0), brightness=20.0))  # band dark: match 0.48
        rule_not_them(session, "dark-stranger.jpg")
        upload(session, "within.jpg", face(around(0.60, 45)))  # 0.459 from the ruled face
        upload(session, "beyond.jpg", face(around(0.60, 48.5)))  # 0.493: within 0.50, not 0.48
        assert queued(session) == ["beyond.jpg"]


def test_not_them_is_for_possible_matches_only(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        enroll_ann(session, verified=False)  # an unchecked opt-out: even a confident match goes to review
        upload(session, "close.jpg", face(around(0.40, 0)))
        [item] = reviews.pending(session)
        assert item.rule == "unverified-opt-out"
        with pytest.raises(ActionError, match="confident match .* 'not them' is for possible matches"):
            reviews.decide(session, item.id, "not-them", "rosa", None)
        assert queued(session) == ["close.jpg"]


def test_without_the_look_alike_threshold_a_verdict_clears_only_its_own_item(db, tmp_path):
    rules = tmp_path / "rules.toml"
    shipped = Path(load_policy().path).read_text()
    rules.write_text("\n".join(line for line in shipped.splitlines() if not line.startswith("look_alike =")))
    policy = load_policy(rules)
    assert policy.look_alike is None
    with open_session(db, policy, engine=ENGINE) as session:
        enroll_ann(session)
        upload(session, "stranger.jpg", face(around(0.60, 0)))
        upload(session, "stranger-again.jpg", face(around(0.60, 40)))
        rule_not_them(session, "stranger.jpg")
        assert queued(session) == ["stranger-again.jpg"]


def test_a_video_is_reviewed_on_the_frame_it_was_decided_on(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        enroll_ann(session)
        upload(session, "clip.mp4", face(around(0.61, 0), 0.0), face(around(0.58, 90), 2.5), kind="video")
        [item] = reviews.pending(session)
    assert (item.frame_times, item.frame_time, item.distance) == ([0.0, 2.5], 2.5, pytest.approx(0.58, abs=1e-3))
