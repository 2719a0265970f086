"""How the detectors' working copies and proposal tiles are sized (no model needed)."""

from matcher.faces.blazeface import BlazeFaceHogDetector
from matcher.faces.hog import HogDetector


def test_default_detection_is_face_recognitions():
    assert HogDetector().detection_plan(3024, 4032) == (1600, 1)
    assert HogDetector().detection_plan(240, 320) == (320, 1)


def test_min_face_sizes_the_copy_for_the_hog_window():
    # A 160 px face must span the 80 px window: half size, no upsampling.
    assert HogDetector(min_face=160).detection_plan(3024, 4032) == (2016, 0)
    # The same photo decoded at half size (scale 2): the same copy.
    assert HogDetector(min_face=160).detection_plan(1512, 2016, scale=2.0) == (2016, 0)
    # Faces smaller than the window: upsampled once, from a copy sized for 40 px.
    assert HogDetector(min_face=50).detection_plan(1000, 1000) == (800, 1)
    assert HogDetector(min_face=20).detection_plan(1000, 1000) == (1000, 1)  # never above full size


def test_proposal_tiles_hold_every_face_whole_and_large_enough():
    """Any square face from the smallest size up to the photo's size, anywhere, lies wholly
    inside some tile of a level where it spans at least the network's smallest face."""
    import numpy as np

    from matcher.faces.blazeface import MIN_FACE_IN_TILE, TILE, tiles

    rng = np.random.default_rng(0)
    for height, width, min_face in ((3024, 4032, 150), (3024, 4032, 75), (250, 250, 40), (1080, 1920, 60),
                                    (5000, 300, 100), (100, 100, 400)):
        plan = tiles(height, width, min_face)
        for _ in range(400):
            side = min(rng.uniform(min_face, max(min_face, min(height, width))), min(height, width))
            top, left = rng.uniform(0, height - side), rng.uniform(0, width - side)
            assert any(
                y <= top * scale and x <= left * scale and (top + side) * scale <= y + TILE
                and (left + side) * scale <= x + TILE and side * scale >= MIN_FACE_IN_TILE - 1e-9
                for scale, y, x in plan
            ), (height, width, min_face, side, top, left)


def test_blazeface_detector_sizes_the_decode_like_hog():
    # The proposals need little resolution; HOG runs on crops zoomed to each face.
    assert BlazeFaceHogDetector(min_face=150).decode_side(3024, 4032) == 1600
    assert BlazeFaceHogDetector().decode_side(240, 320) == 320


def test_a_face_found_twice_is_kept_once():
    """HOG on two neighbouring crops may box one face at two scales; a box wholly inside another is
    the same face (dlib's own suppression), as is one overlapping it by half."""
    from matcher.faces.geometry import same_face
    from matcher.model import Box

    outer = Box(top=121, right=895, bottom=263, left=754)  # measured: one face, boxed twice
    inner = Box(top=135, right=863, bottom=228, left=770)
    assert same_face(inner, outer) and same_face(outer, inner)
    assert same_face(outer, Box(top=130, right=900, bottom=270, left=760))
    neighbour = Box(top=121, right=1040, bottom=263, left=900)  # the next face in a row
    assert not same_face(outer, neighbour)
    assert not same_face(inner, Box(top=160, right=893, bottom=253, left=800))  # shifted, not inside
