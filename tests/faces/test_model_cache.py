"""Converted models kept between commands: built once, private to the user, checked on every read."""

import os
import stat

import numpy as np
import pytest

from matcher.faces.model_cache import cache_folder, cached_bytes, key_of


def test_a_converted_model_is_built_once_and_kept_private(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return b"converted weights"

    folder = tmp_path / "cache"
    assert cached_bytes("model", "k1", build, folder) == b"converted weights"
    assert cached_bytes("model", "k1", build, folder) == b"converted weights"
    assert len(builds) == 1  # the second read the kept file
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in folder.iterdir())
    assert cached_bytes("model", "k2", build, folder) == b"converted weights" and len(builds) == 2  # a new key


def test_a_damaged_file_is_built_again_never_used(tmp_path):
    builds = []

    def build():
        builds.append(1)
        return b"converted weights"

    cached_bytes("model", "k", build, tmp_path)
    (tmp_path / "model-k").write_bytes(b"converted weighTs")  # one byte changed on disk
    assert cached_bytes("model", "k", build, tmp_path) == b"converted weights"
    assert len(builds) == 2
    assert (tmp_path / "model-k").read_bytes() == b"converted weights"  # and the kept file mended


def test_without_a_writable_cache_models_are_built_in_memory(tmp_path):
    assert cache_folder({"CONSENT_MATCHER_CACHE": "off"}) is None
    assert cache_folder({"XDG_CACHE_HOME": "/x"}) == type(tmp_path)("/x/consent-matcher")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert cached_bytes("model", "k", lambda: b"built", blocked) == b"built"


def test_a_replaced_source_file_gives_a_new_key(tmp_path):
    source = tmp_path / "weights.dat"
    source.write_bytes(b"one")
    first = key_of("converter v1", source)
    os.utime(source, ns=(1, 1))
    assert key_of("converter v1", source) != first
    assert key_of("converter v2", source) != key_of("converter v1", source)


def test_the_kept_hog_detector_is_dlibs_own(demo_folder, model_cache, tmp_path):
    """Loaded from the cache (dlib's binary form) it is the very detector dlib decodes from text:
    the same serialized bytes and the same faces."""
    dlib = pytest.importorskip("dlib")
    from PIL import Image

    from matcher.faces import hog

    hog.frontal_detector.cache_clear()
    try:
        kept = hog.frontal_detector()
        assert any(path.name.startswith("dlib-frontal-face-detector-") for path in model_cache.iterdir())
        hog.frontal_detector.cache_clear()
        kept = hog.frontal_detector()  # this time read from the file
    finally:
        hog.frontal_detector.cache_clear()
    own = dlib.get_frontal_face_detector()
    kept.save(str(tmp_path / "kept.svm"))
    own.save(str(tmp_path / "own.svm"))
    assert (tmp_path / "kept.svm").read_bytes() == (tmp_path / "own.svm").read_bytes()
    rgb = np.asarray(Image.open(demo_folder["pair"]).convert("RGB"))
    found, theirs = kept.run(rgb, 1, 0), own.run(rgb, 1, 0)
    assert len(found[0]) == 2 and list(found[0]) == list(theirs[0]) and found[1] == theirs[1]
