"""Each person's own thresholds against hubs, through the real services and store (made-up embeddings:
the face model is not what is tested here; bench/conditions.py measures it on real faces)."""

import numpy as np

from helpers import Cli, near, unit
from matcher.model import Box, Observation, ObservedFace
from matcher.policy import load_policy
from matcher.references import ReferencePhoto
from matcher.services import calibration, enrollment, open_session
from matcher.services.scanning import record_upload

ENGINE = "dlib_resnet_v1"
HUB, OTHERS = unit(1), [unit(seed) for seed in (2, 3, 4, 5)]


def upload(session, name, vectors):
    faces = [ObservedFace(Box(0, 100 * i + 100, 100, 100 * i), v) for i, v in enumerate(vectors)]
    record_upload(session, Observation(path=f"/m/{name}.jpg", engine=ENGINE, size=1, mtime_ns=1, sha256=f"sha-{name}",
                                       kind="image", format="jpeg", width=100, height=100, faces=faces))


def enroll(session, name, embedding):
    return enrollment.enroll(session, name, [ReferencePhoto(f"{name}.jpg", f"ref-{name}", embedding)], "test",
                             verified_by="operator").person


def crowds(session, prefix, centre, nearest, count=300, seed=0):
    """``count`` strangers' faces from ``nearest`` to ``nearest + 0.3`` away from ``centre``, 50 a photo."""
    distances = np.linspace(nearest, nearest + 0.3, count)
    faces = [near(centre, d, seed=seed + i) for i, d in enumerate(distances)]
    for start in range(0, count, 50):
        upload(session, f"{prefix}-{start}", faces[start:start + 50])


def decisions(db) -> dict[str, str]:
    return {name: entry["decision"] for name, entry in Cli(db).report().items()}


def test_a_hub_is_tightened_its_media_decided_again_and_the_change_audited(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        hub = enroll(session, "Hub", HUB)
        for number, centre in enumerate(OTHERS):
            enroll(session, f"Typical {number}", centre)
        # Strangers come as near as 0.64 to the hub's reference, 0.68 to everyone else's.
        crowds(session, "hub-crowd", HUB, 0.64, seed=1000)
        for number, centre in enumerate(OTHERS):
            crowds(session, f"crowd-{number}", centre, 0.68, seed=2000 + 1000 * number)
        upload(session, "close", [near(HUB, 0.53, seed=7)])
        upload(session, "possible", [near(HUB, 0.60, seed=8)])
        assert {p: d for p, d in decisions(db).items() if p in ("close.jpg", "possible.jpg")} == {
            "close.jpg": "remove", "possible.jpg": "review"}

        done = calibration.recompute_thresholds(session, "test")
        assert (done.background, done.measured) == (1500, 5)
        [own] = done.own
        # The hub's near strangers lie 0.04 closer than the typical person's: both thresholds move in by that.
        assert own.person_id == hub.id and abs(done.typical_tail - own.tail - 0.04) < 0.003
        assert abs(own.match - 0.51) < 0.003 and abs(own.review - 0.58) < 0.003
    decided = decisions(db)
    assert (decided["close.jpg"], decided["possible.jpg"]) == ("review", "none")
    [entry] = [e for e in Cli(db).json("audit") if e["event"] == "thresholds"]
    assert entry["subject"] == f"person:{hub.id}" and entry["actor"] == "test"
    assert {p["name"]: p["own_thresholds"] for p in Cli(db).json("people")}["Hub"] == {
        "match": own.match, "review": own.review}
    shown = Cli(db).json("thresholds")  # the command: measured again, nothing changes
    assert shown["changed"] == 0 and [row["person"] for row in shown["own_thresholds"]] == ["Hub"]

    with open_session(db, load_policy(), engine=ENGINE) as session:
        # Unchanged on a second run, and not run again after a scan until the background grows by a fifth.
        assert calibration.recompute_thresholds(session, "test").changed == []
        assert calibration.after_scan(session, "test") is None
        crowds(session, "more", OTHERS[0], 0.70, count=400, seed=9000)
        assert calibration.after_scan(session, "test") is not None
        # Someone new whose reference sits in the hub's crowd is tightened as they enroll.
        newcomer = enroll(session, "Newcomer", near(HUB, 0.02, seed=5))
        assert session.store.people.by_id(newcomer.id).match_threshold is not None


def test_nothing_is_measured_on_too_few_stored_faces(db):
    with open_session(db, load_policy(), engine=ENGINE) as session:
        enroll(session, "Hub", HUB)
        crowds(session, "crowd", HUB, 0.64, count=100)
        done = calibration.recompute_thresholds(session, "test")
        assert (done.typical_tail, done.own, done.changed) == (None, [], [])
        assert calibration.after_scan(session, "test") is None


def test_rules_may_leave_the_measuring_to_the_command(db):
    from matcher.policy import default_policy_path, parse_policy

    shipped = default_policy_path().read_bytes()
    assert b"measure_after_scans = true" in shipped
    rules = parse_policy(shipped.replace(b"measure_after_scans = true", b"measure_after_scans = false"))
    with open_session(db, rules, engine=ENGINE) as session:
        enroll(session, "Hub", HUB)
        crowds(session, "crowd", HUB, 0.64, count=300)
        assert calibration.after_scan(session, "test") is None
        assert calibration.recompute_thresholds(session, "test").typical_tail is not None


def test_a_person_who_cannot_be_measured_keeps_their_thresholds(tmp_path):
    with open_session(tmp_path / "c.db", load_policy(), engine=ENGINE) as session:
        hub = enroll(session, "Hub", HUB)
        session.store.people.set_thresholds(hub.id, 0.51, 0.58)
        crowds(session, "crowd", HUB, 0.64, count=100)  # too few faces to measure anyone
        assert calibration.recompute_thresholds(session, "test").changed == []
        person = session.store.people.by_id(hub.id)
        assert (person.match_threshold, person.review_threshold) == (0.51, 0.58)


def test_api_uploads_look_at_the_background_every_so_often(tmp_path, monkeypatch):
    monkeypatch.setattr(calibration, "UPLOADS_BETWEEN_CHECKS", 3)
    looked = []
    monkeypatch.setattr(calibration, "after_scan", lambda session, actor: looked.append(actor))
    with open_session(tmp_path / "c.db", load_policy(), engine=ENGINE) as session:
        for number in range(7):
            upload(session, f"u{number}", [unit(100 + number)])
    assert looked == ["system", "system"]  # after the 3rd and the 6th upload
