"""A reviewer's "not them" verdict clears a look-alike, through the real services and store:
the same stranger uploaded again is allowed, the person's own faces are not, a confident
match is never hidden, and only faces near what a reviewer saw count (one step, no drift).
Made-up embeddings placed on purpose: the geometry is what is tested (bench/conditions.py
--rule-background measures it on real faces)."""

from pathlib import Path

import numpy as np
from helpers import Cli, unit
from matcher.model import Box, FaceQuality, Observation, ObservedFace
from matcher.policy import load_policy
from matcher.references import ReferencePhoto
from matcher.services import enrollment, open_session, people, reviews
from matcher.services.scanning import record_upload

ENGINE = "dlib_resnet_v1"
ANN = unit(1)


def _across(seed) -> np.ndarray:
    """A unit direction orthogonal to ANN (and to what came before)."""
    vector = np.random.default_rng(seed).normal(size=128)
    vector -= vector.dot(ANN) * ANN
    return vector / np.linalg.norm(vector)


U = _across(2)
W = _across(3)
W = W - W.dot(U) * U
W /= np.linalg.norm(W)


def around(distance, degrees):
    """A face ``distance`` from Ann, turned ``degrees`` about her from the ruled stranger's direction:
    two faces at 0.60 from her, 40 degrees apart, lie 0.41 from each other."""
    angle = np.radians(degrees)
    return (ANN + distance * (np.cos(angle) * U + np.sin(angle) * W)).astype(np.float32)


def upload(session, name, embedding):
    record_upload(session, Observation(path=f"/m/{name}", engine=ENGINE, size=1, mtime_ns=1, sha256=f"sha-{name}",
                                       kind="image", format="jpeg", width=400, height=200,
                                       faces=[ObservedFace(Box(0, 100, 100, 0), embedding, None,
                                                           FaceQuality(100, 80.0, 130.0, 40.0, True))]))


def decided(db):
    return {name: (entry["decision"], entry["matches"][0]["rule"] if entry["matches"] else None)
            for name, entry in Cli(db).report().items()}


def test_a_face_ruled_not_them_clears_that_look_alike_and_nothing_of_theirs(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        ann = enrollment.enroll(session, "Ann", [ReferencePhoto("ann.jpg", "ref-ann", ANN)], "test",
                                verified_by="operator").person
        upload(session, "stranger.jpg", around(0.60, 0))
        upload(session, "stranger-again.jpg", around(0.60, 40))  # 0.41 from the ruled face
        upload(session, "ann-far.jpg", around(0.58, 180))  # her own, as far from her, on the other side
        assert {item.path.rsplit("/", 1)[1] for item in reviews.pending(session)} == {
            "stranger.jpg", "stranger-again.jpg", "ann-far.jpg"}

        item = next(item for item in reviews.pending(session) if item.path.endswith("/stranger.jpg"))
        reviews.decide(session, item.id, "not-them", "rosa", "her neighbour")
        # Uploaded after the verdict: near the ruled face but confidently her; near the cleared face
        # only (one step from what the reviewer saw); two steps away.
        upload(session, "close-to-both.jpg", around(0.45, 0))
        upload(session, "near-cleared.jpg", around(0.60, 80))  # 0.41 from stranger-again, 0.77 from the ruled
        upload(session, "two-steps.jpg", around(0.60, 120))  # 0.41 from near-cleared only
        assert [item.path.rsplit("/", 1)[1] for item in reviews.pending(session)] == [
            "ann-far.jpg", "close-to-both.jpg", "two-steps.jpg"]

        after = decided(db)
        assert after["stranger.jpg"] == ("allow", "reviewer")
        assert after["stranger-again.jpg"] == ("allow", "look-alike-cleared")  # re-decided by the verdict
        assert after["near-cleared.jpg"] == ("allow", "look-alike-cleared")
        assert after["ann-far.jpg"] == ("review", "possible-match")
        assert after["close-to-both.jpg"] == ("review", "look-alike-confident")  # never removed, never hidden
        assert after["two-steps.jpg"] == ("review", "possible-match")

        # Who someone is does not change with her opt-out: the verdict outlives a pause.
        people.set_opted_out(session, ann, False, "test")
        people.set_opted_out(session, ann, True, "test")
        assert decided(db)["stranger.jpg"] == ("allow", "reviewer")
        assert decided(db)["stranger-again.jpg"] == ("allow", "look-alike-cleared")


def test_without_the_look_alike_threshold_a_verdict_clears_only_its_own_item(db, tmp_path):
    rules = tmp_path / "rules.toml"
    shipped = Path(load_policy().path).read_text()
    rules.write_text("\n".join(line for line in shipped.splitlines() if not line.startswith("look_alike =")))
    policy = load_policy(rules)
    assert policy.look_alike is None
    with open_session(db, policy, engine=ENGINE) as session:
        enrollment.enroll(session, "Ann", [ReferencePhoto("ann.jpg", "ref-ann", ANN)], "test", verified_by="operator")
        upload(session, "stranger.jpg", around(0.60, 0))
        upload(session, "stranger-again.jpg", around(0.60, 40))
        item = next(item for item in reviews.pending(session) if item.path.endswith("/stranger.jpg"))
        reviews.decide(session, item.id, "not-them", "rosa", None)
        assert [item.path.rsplit("/", 1)[1] for item in reviews.pending(session)] == ["stranger-again.jpg"]
