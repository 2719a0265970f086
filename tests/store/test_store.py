"""The store's repositories, and re-deciding from stored facts, with made-up embeddings (no face model)."""

import json
import os
import stat

import pytest

from helpers import near, raw, unit
from matcher.model import Box, Observation, ObservedFace, Reference, Upload
from matcher.policy import load_policy
from matcher.services import open_session
from matcher.store import Store, StoreError

ENGINE = "dlib_resnet_v1"


def observation(path, sha, vectors):
    faces = [ObservedFace(Box(0, 100 * i + 100, 100, 100 * i), v) for i, v in enumerate(vectors)]
    return Observation(path=path, engine=ENGINE, size=1, mtime_ns=1, sha256=sha, kind="image", format="jpeg",
                       width=100, height=100, faces=faces)


def decisions(store):
    return {(d.path, d.rule) for d in store.decisions.of_media().values()}


@pytest.mark.sqlite_only("the database file itself")
def test_database_file_is_private_to_its_owner(tmp_path):
    path = tmp_path / "sub" / "consent.db"
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.sqlite_only("the database file itself")
def test_database_created_by_another_process_meanwhile(tmp_path, monkeypatch):
    """Two scans starting together on a new file: the one that loses the race opens the winner's file."""
    path = tmp_path / "consent.db"
    winner = Store(path)
    winner.people.add_references("Ann", ENGINE, [Reference("ref", unit(1))], None, [])
    winner.close()
    real_exists = type(path).exists
    monkeypatch.setattr(type(path), "exists", lambda p: False if p == path else real_exists(p))
    loser = Store(path)  # its O_EXCL create fails: it must open the file, not fail or empty it
    assert [p.name for p in loser.people.all()] == ["Ann"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loser.close()


@pytest.mark.sqlite_only("the database file itself")
def test_a_file_that_is_no_database_is_refused_by_name(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database, " * 100)
    with pytest.raises(StoreError, match="notes.db: not a consent-matcher database"):
        Store(path)


def test_consent_and_enrollment_redecide_from_stored_faces(db):
    session = open_session(db, load_policy())
    store = session.store
    ann = unit(1)
    store.people.add_references("Ann", ENGINE, [Reference("ref1", ann)], None, ["ann-account"])
    store.people.set_verified(store.people.by_name("Ann").id, "operator")
    store.observations.record(observation("/m/a.jpg", "sha-a", [near(ann, 0.3), unit(2)]), Upload("bob"), 1)
    store.observations.record(observation("/m/b.jpg", "sha-b", [near(ann, 0.58)]), Upload("ann-account"), 1)
    store.observations.record(observation("/m/c.jpg", "sha-b", []), Upload("carl", ("news",)), 1)
    store.observations.record(observation("/m/d.jpg", "sha-d", [unit(3)]), None, 1)
    session.decider().update()
    assert decisions(store) == {
        ("/m/a.jpg", "no-consent"), ("/m/b.jpg", "self-posted"), ("/m/c.jpg", "public-interest-context")
    }

    ann_id = store.people.by_name("Ann").id
    consent = store.consents.add(ann_id, "sha-a", None, None)
    session.decider().redecide()
    assert ("/m/a.jpg", "consent") in decisions(store)
    assert store.consents.revoke(consent) == ann_id
    assert store.consents.revoke(consent) is None  # no longer active
    store.consents.add(ann_id, None, "carl", "2000-01-01")  # expired long ago
    session.decider().redecide()
    assert ("/m/a.jpg", "no-consent") in decisions(store)
    assert ("/m/c.jpg", "public-interest-context") in decisions(store)

    # Retroactive matching: a person enrolled after the scan is found in stored faces.
    store.people.add_references("Dan", ENGINE, [Reference("ref2", near(unit(3), 0.1))], True, [])
    session.decider().update()
    assert ("/m/d.jpg", "public-figure") in decisions(store)
    session.close()
    with raw(db) as conn:
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == 4


def test_recording_a_file_twice_adds_no_rows(db):
    store = Store(db)
    obs = observation("/m/a.jpg", "sha-a", [unit(1), unit(2)])
    store.observations.record(obs, None, 1)
    store.observations.record(obs, None, 1)
    store.observations.record(observation("/m/copy.jpg", "sha-a", [unit(1), unit(2)]), None, 1)
    store.close()
    with raw(db) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in ("media", "faces", "files")]
    assert counts == [1, 2, 2]


def test_a_failed_write_leaves_nothing_half_done(db):
    """A change and its audit entry land together or not at all."""
    from matcher.model import NewAuditEntry

    store = Store(db)
    with pytest.raises(RuntimeError):
        with store.write():
            store.people.add_references("Ann", ENGINE, [Reference("ref", unit(1))], None, [])
            store.audit.append([NewAuditEntry("test", "enroll", "person:1")])
            raise RuntimeError("the disk went away")
    assert store.people.all() == [] and store.audit.entries() == []
    store.close()


def test_each_face_keeps_its_measured_quality(db):
    from matcher.model import FaceQuality

    store = Store(db)
    obs = observation("/m/a.jpg", "sha-a", [unit(1)])
    obs.faces[0].quality = FaceQuality(width=64, sharpness=12.5, brightness=40.0, contrast=9.5, frontal=False,
                                       lower_texture=0.12)
    store.observations.record(obs, None, 1)
    store.close()
    with raw(db) as conn:
        [stored] = conn.execute("SELECT quality FROM faces").fetchone()
    assert json.loads(stored) == {"width": 64, "sharpness": 12.5, "brightness": 40.0, "contrast": 9.5,
                                  "frontal": False, "lower_texture": 0.12}
    from matcher.store.decisions import face_measures

    assert face_measures(stored, 0, 64) == (64, 12.5, 40.0, False, 0.12)
    # Faces stored before `frontal` was measured: HOG found them all, so they were seen frontally;
    # before `lower_texture` was: unknown (never under a band's limit).
    assert face_measures('{"width": 64, "sharpness": 12.5, "brightness": 40.0}', 0, 64)[3:] == (True, None)
    assert face_measures(None, 10, 74) == (64, None, None, True, None)
