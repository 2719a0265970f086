"""A face not seen frontally (only the proposal network saw it: a covered lower face, a turned
head), through the real services and store: recorded, read back and decided in its band.
Made-up embeddings: the face model is not what is tested here (the covered-face test in
tests/e2e/test_shared_faces.py runs the real one on real faces)."""

from helpers import Cli, near, unit
from matcher.model import Box, FaceQuality, Observation, ObservedFace
from matcher.policy import load_policy
from matcher.references import ReferencePhoto
from matcher.services import enrollment, open_session
from matcher.services.scanning import record_upload

ENGINE = "dlib_resnet_v1"
ANN = unit(1)


def upload(session, name, faces, kind="image"):
    record_upload(session, Observation(path=f"/m/{name}", engine=ENGINE, size=1, mtime_ns=1, sha256=f"sha-{name}",
                                       kind=kind, format="jpeg" if kind == "image" else "mp4", width=400,
                                       height=200, faces=faces))


def face(distance, seed, frontal=True, frame_time=None):
    return ObservedFace(Box(0, 100, 100, 0, frontal=frontal), near(ANN, distance, seed=seed), frame_time,
                        FaceQuality(100, 80.0, 130.0, 40.0, frontal))


def test_a_face_not_seen_frontally_is_reviewed_however_close_and_a_clear_frame_of_her_decides(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        enrollment.enroll(session, "Ann", [ReferencePhoto("ann.jpg", "ref-ann", ANN)], "test", verified_by="operator")
        upload(session, "covered.jpg", [face(0.30, seed=1, frontal=False)])
        upload(session, "clear.jpg", [face(0.30, seed=2)])
        # A video: her mask on in one frame, off in the next, farther but seen whole.
        upload(session, "both.mp4", [face(0.30, seed=3, frontal=False, frame_time=0.0),
                                     face(0.45, seed=4, frame_time=1.0)], kind="video")
        upload(session, "covered-far.jpg", [face(0.58, seed=5, frontal=False)])
    report = Cli(db).report()
    decided = {name: (entry["decision"], entry["matches"][0]["rule"] if entry["matches"] else None)
               for name, entry in report.items()}
    assert decided["covered.jpg"] == ("review", "not-seen-frontally")
    assert decided["clear.jpg"] == ("remove", "no-consent")
    assert decided["both.mp4"] == ("remove", "no-consent")  # the frame that shows her whole decides
    assert decided["covered-far.jpg"][0] == "none"  # beyond the band's review limit (0.55)
