"""How the detector's working copy is sized (no model needed)."""

from matcher.engine import DlibEngine


def test_default_detection_is_face_recognitions():
    assert DlibEngine().detection_plan(3024, 4032) == (1600, 1)
    assert DlibEngine().detection_plan(240, 320) == (320, 1)


def test_min_face_sizes_the_copy_for_the_hog_window():
    # A 160 px face must span the 80 px window: half size, no upsampling.
    assert DlibEngine(min_face=160).detection_plan(3024, 4032) == (2016, 0)
    # The same photo decoded at half size (scale 2): the same copy.
    assert DlibEngine(min_face=160).detection_plan(1512, 2016, scale=2.0) == (2016, 0)
    # Faces smaller than the window: upsampled once, from a copy sized for 40 px.
    assert DlibEngine(min_face=50).detection_plan(1000, 1000) == (800, 1)
    assert DlibEngine(min_face=20).detection_plan(1000, 1000) == (1000, 1)  # never above full size
