"""A verdict is given on what the queue showed: an item decided again on something else in the
meantime (the same item id: the same file and person) refuses it, through the real services and
store; made-up embeddings placed on purpose."""

import pytest
from helpers import near, unit
from matcher.model import Box, FaceQuality, Observation, ObservedFace
from matcher.policy import load_policy
from matcher.references import ReferencePhoto
from matcher.services import ActionError, enrollment, open_session, people, reviews
from matcher.services.scanning import record_upload

ENGINE = "dlib_resnet_v1"
ANN = unit(1)


def upload(session, sha256, distance):
    """The file /m/a.jpg, with one face ``distance`` from Ann (a new ``sha256``: the file changed)."""
    face = ObservedFace(Box(0, 100, 100, 0), near(ANN, distance, seed=len(sha256)), None,
                        FaceQuality(100, 80.0, 130.0, 40.0, True))
    record_upload(session, Observation(path="/m/a.jpg", engine=ENGINE, size=1, mtime_ns=1, sha256=sha256,
                                       kind="image", format="jpeg", width=400, height=200, faces=[face]))


def test_a_verdict_on_an_item_decided_again_since_it_was_shown_is_refused(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        ann = enrollment.enroll(session, "Ann", [ReferencePhoto("ann.jpg", "ref-ann", ANN)], "test",
                                verified_by="operator").person
        upload(session, "sha-first", 0.60)
        [shown] = reviews.pending(session)
        # Paused and resumed: decided again, on the same face, rule and reason: still what was shown.
        people.set_opted_out(session, ann, False, "test")
        people.set_opted_out(session, ann, True, "test")
        [again] = reviews.pending(session)
        assert (again.id, again.version) == (shown.id, shown.version)

        upload(session, "sha-changed", 0.58)  # the file changed: another face, the same item
        [now] = reviews.pending(session)
        assert now.id == shown.id and now.version != shown.version and now.distance != shown.distance
        trail = len(session.store.audit.entries())
        with pytest.raises(ActionError, match="decided again since it was shown"):
            reviews.decide(session, shown.id, "not-them", "rosa", None, seen=shown.version)
        assert reviews.pending(session) == [now] and len(session.store.audit.entries()) == trail

        reviews.decide(session, now.id, "remove", "rosa", None, seen=now.version)
        assert reviews.pending(session) == []
