"""Store and re-deciding from stored facts, with made-up embeddings (no face model involved)."""

import os
import stat

import numpy as np

from matcher.decide import Decider
from matcher.engine import Box
from matcher.policy import load_policy
from matcher.scan import Observation, ObservedFace
from matcher.store import Store

ENGINE = "dlib_resnet_v1"


def unit(seed):
    vector = np.random.default_rng(seed).normal(size=128)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def near(vector, distance, seed=99):
    """A vector at exactly ``distance`` from ``vector``."""
    direction = np.random.default_rng(seed).normal(size=128)
    direction -= direction.dot(vector) * vector
    return (vector + distance * direction / np.linalg.norm(direction)).astype(np.float32)


def observation(path, sha, vectors):
    faces = [ObservedFace(Box(0, 10 * i + 10, 10, 10 * i), v) for i, v in enumerate(vectors)]
    return Observation(path=path, size=1, mtime_ns=1, sha256=sha, kind="image", format="jpeg",
                       width=100, height=100, faces=faces)


def decisions(store):
    return {(r["path"], r["rule"]) for r in store.db.query("SELECT path, rule FROM decisions")}


def test_database_file_is_private_to_its_owner(tmp_path):
    path = tmp_path / "sub" / "consent.db"
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    Store(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_database_created_by_another_process_meanwhile(tmp_path, monkeypatch):
    """Two scans starting together on a new file: the one that loses the race opens it."""
    path = tmp_path / "consent.db"
    Store(path).close()
    real_exists = type(path).exists
    monkeypatch.setattr(type(path), "exists", lambda p: False if p == path else real_exists(p))
    Store(path).close()


def test_consent_and_enrollment_redecide_from_stored_faces(tmp_path):
    store = Store(tmp_path / "c.db")
    policy = load_policy()
    ann = unit(1)
    store.add_person_references("Ann", ENGINE, [("ref1", ann)], None, ["ann-account"])
    store.record(observation("/m/a.jpg", "sha-a", [near(ann, 0.3), unit(2)]), {"uploader": "bob"})
    store.record(observation("/m/b.jpg", "sha-b", [near(ann, 0.58)]), {"uploader": "ann-account"})
    store.record(observation("/m/c.jpg", "sha-b", []), {"uploader": "carl", "context": ["news"]})
    store.record(observation("/m/d.jpg", "sha-d", [unit(3)]), None)
    Decider(store, policy, ENGINE).update()
    assert decisions(store) == {
        ("/m/a.jpg", "no-consent"), ("/m/b.jpg", "self-posted"), ("/m/c.jpg", "public-interest-context")
    }

    consent = store.add_consent(store.person("Ann").id, "sha-a", None, None)
    Decider(store, policy, ENGINE).redecide()
    assert ("/m/a.jpg", "consent") in decisions(store)
    store.revoke_consent(consent)
    store.add_consent(store.person("Ann").id, None, "carl", "2000-01-01")  # expired long ago
    Decider(store, policy, ENGINE).redecide()
    assert ("/m/a.jpg", "no-consent") in decisions(store)
    assert ("/m/c.jpg", "public-interest-context") in decisions(store)

    # Retroactive matching: a person enrolled after the scan is found in stored faces.
    store.add_person_references("Dan", ENGINE, [("ref2", near(unit(3), 0.1))], True, [])
    Decider(store, policy, ENGINE).update()
    assert ("/m/d.jpg", "public-figure") in decisions(store)
    assert store.db["faces"].count == 4


def test_recording_a_file_twice_adds_no_rows(tmp_path):
    store = Store(tmp_path / "c.db")
    obs = observation("/m/a.jpg", "sha-a", [unit(1), unit(2)])
    store.record(obs, None)
    store.record(obs, None)
    store.record(observation("/m/copy.jpg", "sha-a", [unit(1), unit(2)]), None)
    assert (store.db["media"].count, store.db["faces"].count, store.db["files"].count) == (1, 2, 2)
