"""The contract every face engine keeps: the same checks run on each (as python-threatexchange
gives every signal type the same auto-tests). A new engine is added to ENGINES below.

Real engines run on the package-shipped photos (Eileen Collins and Grace Hopper
side by side); the test-only square engine on its own pictures.
"""

import pickle

import numpy as np
import pytest
from PIL import Image

from engines import SquareSpec, square_photo
from matcher.faces import DlibSpec, process_engine
from matcher.faces.geometry import downscale


def two_people(demo_folder) -> np.ndarray:
    return np.asarray(Image.open(demo_folder["pair"]).convert("RGB"))


def two_squares(demo_folder) -> np.ndarray:
    return square_photo([(220, 40, 40), (40, 60, 220)])


# (spec, picture with two faces of two different people, the farthest two faces of one person may be)
ENGINES = {
    "dlib-hog": (DlibSpec(detector="hog"), two_people, 0.55),
    "dlib-blazeface": (DlibSpec(detector="blazeface"), two_people, 0.55),
    "test-squares": (SquareSpec(), two_squares, 0.01),
}


@pytest.fixture(params=list(ENGINES), ids=list(ENGINES))
def engine_case(request, demo_folder):
    spec, picture, same_person = ENGINES[request.param]
    return spec, np.ascontiguousarray(picture(demo_folder)), same_person


def test_the_spec_names_the_embeddings_and_travels_to_workers(engine_case):
    spec, _, _ = engine_case
    engine = process_engine(spec)
    assert isinstance(spec.name, str) and spec.name and engine.name == spec.name
    assert pickle.loads(pickle.dumps(spec)) == spec  # sent to worker processes
    assert process_engine(spec) is engine  # built once per process
    assert isinstance(engine.dim, int) and engine.dim > 0


def test_faces_are_found_boxed_inside_the_image_and_embedded(engine_case):
    spec, rgb, _ = engine_case
    engine = process_engine(spec)
    faces = engine.faces(rgb)
    assert len(faces) == 2
    height, width = rgb.shape[:2]
    for face in faces:
        box = face.box
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
        assert face.embedding.shape == (engine.dim,) and face.embedding.dtype == np.float32
        assert np.isfinite(face.embedding).all()
    # Two different people: farther apart than any threshold the rules may use.
    assert np.linalg.norm(faces[0].embedding - faces[1].embedding) > 0.62


def test_faces_is_detect_then_embed_and_deterministic(engine_case):
    spec, rgb, same_person = engine_case
    engine = process_engine(spec)
    boxes = engine.detect(rgb)
    vectors = engine.embed(rgb, boxes)
    assert vectors.shape == (len(boxes), engine.dim) and vectors.dtype == np.float32
    again = engine.faces(rgb)
    assert [face.box for face in again] == boxes
    assert max(np.linalg.norm(face.embedding - vector) for face, vector in zip(again, vectors)) <= 1e-5
    # The same faces in a mirror image: the same people.
    mirrored = engine.faces(np.ascontiguousarray(rgb[:, ::-1]))
    assert len(mirrored) == 2
    for vector in vectors:
        assert min(np.linalg.norm(face.embedding - vector) for face in mirrored) <= same_person


def test_no_face_in_an_empty_picture_and_nothing_to_embed(engine_case):
    spec, rgb, _ = engine_case
    engine = process_engine(spec)
    assert engine.faces(np.full_like(rgb, 128)) == []
    assert engine.embed(rgb, []).shape == (0, engine.dim)


def test_detection_at_reduced_size_gives_boxes_in_that_image(engine_case):
    """``scale`` says how many original pixels one pixel of the image is; boxes stay in the image's own pixels."""
    spec, rgb, _ = engine_case
    engine = process_engine(spec)
    height, width = rgb.shape[:2]
    assert 0 < engine.decode_side(height, width) <= max(height, width)
    assert engine.decode_side(height * 4, width * 4) > 0
    full = engine.detect(rgb)
    half, _ = downscale(rgb, max(height, width) // 2)
    reduced = engine.detect(np.ascontiguousarray(half), scale=2.0)
    assert len(reduced) == len(full)
    for box in reduced:
        assert 0 <= box.left < box.right <= half.shape[1] and 0 <= box.top < box.bottom <= half.shape[0]
