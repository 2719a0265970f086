"""The liveness check of self-enrollment on real faces: videos are built at run time from the
files in ../shared/faces (nothing is copied elsewhere) into pytest's temporary folder.

The five cases of the issue, plus checks of the parts:
1. the clip's segments joined in the prompted order pass;
2. the same segments in the wrong order fail;
3. a still photo made into a 3 s video fails;
4. that photo tilted as a flat plane, following the prompts, fails;
5. the clip checked against another person's reference fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liveness_videos as make_videos
from matcher.faces import DlibSpec, process_engine
from matcher.faces import liveness
from matcher.faces.liveness import MESSAGES, check_liveness

pytestmark = pytest.mark.skipif(not make_videos.CLIP.is_file(),
                                reason=f"the shared face collection is absent ({make_videos.CLIP})")


def reference_embeddings(path: Path) -> np.ndarray:
    """The enrolled embedding of a reference photo, as enrollment makes it."""
    faces = process_engine(DlibSpec()).faces(make_videos.load_rgb(path))
    return np.array([max(faces, key=lambda f: f.box.width).embedding])


def _missing(direction: str) -> str:
    return MESSAGES["missing_turn"].format(what=liveness._MISSING[direction])


@pytest.fixture(scope="module")
def miranda() -> np.ndarray:
    return reference_embeddings(make_videos.MIRANDA)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("liveness-videos")


@pytest.fixture(scope="module")
def left_right(videos) -> Path:
    return make_videos.segments_video(videos / "left_right.mp4", ["left", "right"])


def report(result: liveness.LivenessResult) -> str:
    """What a failing assertion shows: the problems and the turns measured."""
    m = result.measurements
    return (f"passed={result.passed} problems={result.problems} turns_seen={m.get('turns_seen')} "
            f"distance={m.get('distance')} frame_distances={m.get('frame_distances')} "
            f"shape_motion={m.get('shape_motion')} turns={m.get('turns')}")


# 1. In the prompted order: pass.

def test_segments_in_prompted_order_pass(left_right, miranda):
    result = check_liveness(left_right, ["left", "right"], miranda)
    assert result.passed, report(result)
    assert result.problems == []
    assert result.measurements["turns_seen"] == ["left", "right"]
    assert result.measurements["distance"] <= 0.55


def test_three_prompts_in_order_pass(videos, miranda):
    path = make_videos.segments_video(videos / "right_left_right.mp4", ["right", "left", "right_b"])
    result = check_liveness(path, ["right", "left", "right"], miranda)
    assert result.passed, report(result)
    assert result.measurements["turns_seen"] == ["right", "left", "right"]


# 2. Wrong order: fail, saying so.

def test_segments_in_wrong_order_fail(left_right, miranda):
    result = check_liveness(left_right, ["right", "left"], miranda)
    assert not result.passed
    assert result.measurements["turns_seen"] == ["left", "right"]
    assert result.problems == [MESSAGES["order"].format(seen="turn to your left, then turn to your right",
                                                        asked="turn to your right, then turn to your left")]


def test_missing_prompt_is_named(left_right, miranda):
    result = check_liveness(left_right, ["left", "right", "up"], miranda)
    assert not result.passed
    assert result.problems == [_missing("up")], report(result)
    assert "we did not see your head move up" in result.problems


def test_mirrored_reading_swaps_left_and_right(left_right, miranda):
    mirrored = liveness.LivenessConfig(mirror="mirrored")
    assert check_liveness(left_right, ["right", "left"], miranda, mirrored).passed
    either = liveness.LivenessConfig(mirror="either")
    result = check_liveness(left_right, ["right", "left"], miranda, either)
    assert result.passed and result.measurements["mirrored_reading"] is True


# 3. A still photo: fail.

def test_still_photo_fails(videos, miranda):
    path = make_videos.still_video(videos / "still.mp4")
    result = check_liveness(path, ["left", "right"], miranda)
    assert not result.passed
    assert MESSAGES["still"] in result.problems, report(result)
    assert MESSAGES["mismatch"] not in result.problems  # it is his face, only not alive
    assert result.measurements["shape_motion"] < liveness.LivenessConfig().min_shape_motion


# 4. The photo tilted as a flat plane, following the prompts: fail.

@pytest.mark.parametrize("prompts", [["left", "right"], ["right", "left", "up"], ["up", "down"]])
def test_flat_photo_tilted_30_degrees_fails(videos, miranda, prompts):
    """The brief's case: Miranda's photo turned as a plane by 30 degrees about its vertical
    axis for left / right, 25 degrees about its horizontal axis for up / down."""
    path = make_videos.flat_photo_video(videos / f"flat30-{'-'.join(prompts)}.mp4", prompts)
    result = check_liveness(path, prompts, miranda)
    assert not result.passed, report(result)
    assert MESSAGES["still"] not in result.problems  # it moved
    # Whatever turns the landmarks read into the tilting photo, none shows 3-D parallax.
    if result.measurements["turns"]:
        assert MESSAGES["flat"] in result.problems, report(result)


def test_flat_photo_tilted_hard_fails_as_flat(videos):
    """A stronger attack: a frontal photo (Obama) tilted 45 degrees, so that the landmarks
    read both prompted turns; the reference is another photo of him (the victim's)."""
    reference = reference_embeddings(make_videos.EXAMPLES / "obama2.jpg")
    path = make_videos.flat_photo_video(videos / "flat45.mp4", ["left", "right"], photo=make_videos.OBAMA,
                                        degrees=45.0)
    result = check_liveness(path, ["left", "right"], reference)
    assert not result.passed
    assert result.measurements["turns_seen"] == ["left", "right"], report(result)  # the landmarks read the turns...
    assert result.problems == [MESSAGES["flat"]], report(result)  # ...which showed no parallax
    assert all(not liveness.is_3d(liveness.TurnEvent("", 0, 0, 0, 0, texture=liveness.TextureMotion(**t["texture"])),
                                  liveness.LivenessConfig()) for t in result.measurements["turns"])


# 5. Another person's reference: fail as not the same person.

@pytest.mark.parametrize("photo", ["obama.jpg", "alex-lacamoire.png"])
def test_other_person_fails(left_right, photo):
    reference = reference_embeddings(make_videos.EXAMPLES / photo)
    result = check_liveness(left_right, ["left", "right"], reference)
    assert not result.passed
    assert MESSAGES["mismatch"] in result.problems, report(result)
    assert result.measurements["distance"] > 0.62


# The parts.

def test_homography_fits_a_flat_plane_exactly():
    rng = np.random.default_rng(1)
    frontal = rng.uniform(100, 300, (68, 2))
    frontal[0], frontal[16] = (100, 200), (300, 200)  # face width 200
    matrix = np.array([[0.9, 0.05, 12], [-0.03, 1.02, -7], [2e-4, -1e-4, 1]])
    points = np.column_stack([frontal, np.ones(68)]) @ matrix.T
    turned = points[:, :2] / points[:, 2:]
    assert liveness.landmark_parallax(frontal, turned) < 1e-6


def test_head_pose_signs_on_the_clip():
    frames, fps = make_videos.clip_frames()
    picked = [liveness.VideoFrame(t, frames[round(t * fps)]) for t in (3.2, 4.4, 6.9, 2.74)]
    yaw = {o.time_s: o.yaw for o in liveness.observe_faces(picked)}
    assert abs(yaw[3.2]) < 5  # facing the camera
    assert yaw[4.4] < -20 and yaw[6.9] < -20  # his right: nose to the image's left
    assert yaw[2.74] > 10  # his left: nose to the image's right


def test_too_long_video_is_refused(miranda):
    frame = make_videos._fit(make_videos.load_rgb(make_videos.MIRANDA))
    video = liveness.SampledVideo([liveness.VideoFrame(t / 10, frame) for t in range(5)], 20.0, 30.0, True)
    result = check_liveness(video, ["left"], miranda)
    assert MESSAGES["too_long"].format(max_seconds=15) in result.problems


def test_unreadable_video(tmp_path, miranda):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video")
    result = check_liveness(path, ["left"], miranda)
    assert not result.passed and result.problems == [MESSAGES["no_video"]]


def test_random_prompts_never_repeat_in_a_row():
    for _ in range(50):
        prompts = liveness.random_prompts(4)
        assert len(prompts) == 4 and all(a != b for a, b in zip(prompts, prompts[1:]))
        assert set(prompts) <= set(liveness.DIRECTIONS)
