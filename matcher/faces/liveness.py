"""Liveness check for self-enrollment: is the person of the reference photos the one who
recorded this selfie video, turning their head as prompted?

A person who enrolls (to opt out) uploads reference photos, is shown prompts in a random
order ("turn your head to your left, then to your right, then look up") and uploads a
short selfie video through a plain HTML form. :func:`check_liveness` checks:

1. identity: the face in the video is the face of the reference photos (dlib's ResNet
   embeddings, Euclidean distance, the project's thresholds: match 0.55, review 0.62);
2. the prompted head turns, in the prompted order, within the allowed duration (yaw and
   pitch from dlib's 68 landmarks and ``cv2.solvePnP`` on a generic 3-D face);
3. not a picture: a still image (no motion) and a flat photo tilted in front of the
   camera both fail. Two frames of a flat picture are related by a homography whatever
   the tilt; a real head turning shows parallax (the nose moves against the cheeks), which
   no homography fits. Measured on real footage and 1,300 tilted photos: dlib's landmarks
   do not show it reliably (the landmark model reads a tilted photo partly as a turned
   head), so the decision uses texture tracked from the frontal frame to the turned one
   (:func:`track_texture`); the landmarks' residual is reported only.

Directions are the person's own: "left" is the person's left. In an unmirrored video
(what the camera saw, as someone facing the person sees them) a turn to the person's
left moves the nose towards the image's right. See ``LivenessConfig.mirror``.

No work happens at import: dlib and the models load on first use. Video reading is in
:func:`read_video` only; :func:`check_liveness` takes a path, a :class:`SampledVideo` or
frames. The measurements behind the thresholds (one real clip, 1,153 tilted flat photos)
and the limits of the check are in models/liveness.md.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from matcher.faces.hog import frontal_detector
from matcher.faces.landmarks import shape_predictor
from matcher.faces.onnx_resnet import OnnxResnetEmbedder
from matcher.model import Box

DIRECTIONS = ("left", "right", "up", "down")
CENTRE = "centre"

# Words for the person, one per thing that was missing.
MESSAGES = {
    "no_video": "we could not read the video; please record it again",
    "too_long": "the video is longer than {max_seconds:.0f} seconds; please record a shorter one",
    "no_face": "we could not see your face in the video; please record it again in good light, "
               "with your face filling much of the picture",
    "few_faces": "we could see your face in only {percent:.0f}% of the video; keep your face in the picture "
                 "all the time",
    "mismatch": "the face in the video does not match your photos",
    "uncertain": "we could not confirm that the face in the video matches your photos; a person will check it",
    "other_face": "another face appears in the video for part of the time; record it alone",
    "still": "the video looks like a still picture: we saw no movement",
    "flat": "the video looks like a flat picture (a photo or a screen) moved in front of the camera, "
            "not a real head turning",
    "small": "your face is too small or cut off by the edge of the picture while you turn; hold the phone "
             "closer, with your whole face in the picture",
    "untracked": "we could not follow your face while it turned; please turn more slowly, in good light",
    "missing_turn": "we did not see your head {what}",
    "order": "we saw your head {seen}, but we asked you to {asked}; please follow the prompts in their order",
    "extra": "we saw more head movements than we asked for ({seen}); please make only the prompted movements",
}

_PHRASES = {"left": "turn to your left", "right": "turn to your right", "up": "look up", "down": "look down"}
_MISSING = {"left": "turn to your left", "right": "turn to your right", "up": "move up", "down": "move down"}


@dataclass(frozen=True)
class LivenessConfig:
    # Identity (the project's thresholds, data/policy.toml), applied to the distance of
    # the video's mean embedding (the face's embeddings averaged over the embedded frames:
    # steadier than any one frame of a small or turned face).
    match_threshold: float = 0.55
    review_threshold: float = 0.62
    # A frame farther than this from every reference shows somebody else (turned faces of
    # the right person embed worse: up to 0.63 in the Hamilton clip; other people there
    # are 0.67 and more). No evidence frame, and at most `max_other_face_share` of the
    # embedded frames, may be that far.
    other_face_distance: float = 0.70
    max_other_face_share: float = 0.2
    # Embed a frame at most this often (the work a video costs stays bounded, whatever
    # its frame rate), plus every frame used as evidence of a turn.
    embed_every_s: float = 0.3
    # A turn: yaw this far from facing the camera, pitch this far from the pitch at rest
    # (see neutral_pose). Low because the only real footage available (the Hamilton clip)
    # has turns to the left of 11-13.5 degrees; see NOTES.md.
    turn_yaw_deg: float = 8.0
    turn_pitch_deg: float = 10.0
    # A turn must last at least this long (one-frame landmark jitter is no turn).
    min_turn_s: float = 0.15
    # Flat-picture test (see track_texture): a turn is 3-D when the texture's 80th
    # percentile distance from the best homography reaches this share of the face's width
    # AND the homography's residual is this many times the fundamental matrix's.
    # Measured (NOTES.md): of 1,153 tilted flat photos none reaches both (highest 0.0303
    # with a ratio of 2.38; highest ratio 3.42 at 0.009); the clip's test turns reach
    # 0.035-0.097 and 4.3-8.7.
    min_off_plane: float = 0.030
    min_plane_to_rigid_ratio: float = 2.5
    # Evidence frames: the face at least this wide (landmark outline, pixels of the
    # processed frame) and inside the frame by this share of its width.
    min_face_px: float = 70.0
    edge_margin: float = 0.05
    # Still test: landmark shape change (position and scale removed) below this = no
    # movement. Measured: still photos 0.013-0.023 (landmarks vary a little with the
    # detector's box), the clip's segments 0.076-0.165, a tilted flat photo 0.066.
    min_shape_motion: float = 0.040
    # Bounds on the work per video.
    max_seconds: float = 15.0
    sample_fps: float = 10.0
    max_frames: int = 150
    max_side: int = 640
    min_face_share: float = 0.5  # of the sampled frames
    # How the video is oriented: "unmirrored" (the camera's view; "left" = image right),
    # "mirrored" (as a selfie preview; "left" = image left), or "either" (accept whichever
    # reading matches the prompts; halves the number of distinct prompt orders).
    mirror: str = "unmirrored"


@dataclass(frozen=True)
class VideoFrame:
    time_s: float
    rgb: np.ndarray  # H x W x 3 uint8, RGB


@dataclass(frozen=True)
class SampledVideo:
    frames: list[VideoFrame]
    duration_s: float  # of the whole file (may exceed what was sampled)
    fps: float
    too_long: bool  # frames exist after max_seconds (only the first max_seconds were read)


@dataclass(frozen=True)
class FaceObservation:
    """The largest face of one sampled frame."""

    frame_index: int
    time_s: float
    box: tuple[int, int, int, int]  # left, top, right, bottom
    landmarks: np.ndarray  # (68, 2) float, dlib's 68-point layout
    yaw: float  # degrees; + = nose towards the image's right, relative to the line of sight
    pitch: float  # degrees; + = nose up
    faces_in_frame: int
    embedding: np.ndarray | None = None  # (128,) float32, on the frames that were embedded
    distance: float | None = None  # to the nearest reference embedding


@dataclass(frozen=True)
class TurnEvent:
    direction: str  # in the image's terms: "image_left" / "image_right" / "up" / "down"
    start_s: float
    end_s: float
    peak: int  # index into the observations
    peak_angle: float  # degrees from neutral
    frontal: int | None = None  # index of the frontal observation it is compared with
    landmark_parallax: float | None = None
    texture: "TextureMotion | None" = None
    face_px: float = 0.0
    inside: bool = True


@dataclass
class LivenessResult:
    passed: bool
    problems: list[str]
    measurements: dict = field(default_factory=dict)
    needs_review: bool = False  # only the identity is uncertain: a person decides


# --------------------------------------------------------------------------- models


def _landmarks68():
    """dlib and its 68-point landmark predictor (pose needs more points than embedding's 5)."""
    return shape_predictor("shape_predictor_68_face_landmarks.dat")


def embed_face(rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The embedding of the face in ``box`` (left, top, right, bottom): the same as the enrolled ones'."""
    left, top, right, bottom = box
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return OnnxResnetEmbedder().embed(rgb, [Box(top, right, bottom, left)])[0]


# --------------------------------------------------------------------------- pose

# A generic 3-D face (millimetres, average adult proportions), in OpenCV's camera
# convention for a face looking into the camera: x towards the image's right, y down,
# z away from the camera (the nose tip has the smallest z). Keys: dlib 68-point indices.
FACE_MODEL_3D = {
    27: (0.0, 0.0, 0.0),  # nasion (top of the nose between the eyes)
    30: (0.0, 48.0, -22.0),  # nose tip
    31: (-14.0, 54.0, 0.0),  # nostril wings
    35: (14.0, 54.0, 0.0),
    33: (0.0, 58.0, -10.0),  # below the nose
    36: (-45.0, 4.0, 22.0),  # outer eye corners
    45: (45.0, 4.0, 22.0),
    39: (-16.0, 4.0, 12.0),  # inner eye corners
    42: (16.0, 4.0, 12.0),
    48: (-25.0, 82.0, 12.0),  # mouth corners (move a little when speaking; steady the pitch)
    54: (25.0, 82.0, 12.0),
    8: (0.0, 125.0, 10.0),  # chin
}
_MODEL_INDEX = list(FACE_MODEL_3D)
_MODEL_POINTS = np.array([FACE_MODEL_3D[i] for i in _MODEL_INDEX], np.float64)
_OUTER_EYE_SPAN_MM = 90.0

# Landmarks that follow the skull and change little with expression (no mouth, no chin,
# no eyelids): the outline near the ears and cheeks, eyebrows, nose, eye corners.
RIGID_POINTS = [0, 1, 2, 3, 13, 14, 15, 16, *range(17, 27), *range(27, 36), 36, 39, 42, 45]
# Texture is tracked inside the polygon of the outline's upper part and the eyebrows:
# forehead-to-cheek skin, eyes and nose; not the mouth and jaw, which move when talking.
_TEXTURE_REGION = [0, 1, 2, 3, 13, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17]


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> tuple[float, float]:
    """(yaw, pitch) in degrees of the head relative to the line of sight from the camera.

    yaw > 0: the nose points towards the image's right; pitch > 0: the nose points up.
    ``image_size`` is (width, height). The camera is assumed to have a focal length of the
    image's longest side (a field of view of about 53 degrees, near phones' front cameras)
    and no distortion; the angles are approximate (generic face), their changes within
    one video are what the check uses.
    """
    import cv2

    width, height = image_size
    focal = float(max(width, height))
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)
    image_points = landmarks[_MODEL_INDEX].astype(np.float64)
    # Start from a face looking into the camera at the distance its eye span implies:
    # without a guess the solver often lands on the mirror solution (a face seen from
    # behind, yaw near 180 degrees).
    eye_span = max(1.0, float(np.linalg.norm(landmarks[45] - landmarks[36])))
    depth = focal * _OUTER_EYE_SPAN_MM / eye_span
    nasion = landmarks[27]
    tvec = np.array([[(nasion[0] - width / 2) * depth / focal], [(nasion[1] - height / 2) * depth / focal], [depth]])
    rvec = np.zeros((3, 1))
    _, rvec, tvec = cv2.solvePnP(_MODEL_POINTS, image_points, camera, None, rvec, tvec,
                                 useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    rotation, _ = cv2.Rodrigues(rvec)
    facing = rotation @ np.array([0.0, 0.0, -1.0])  # where the nose points, camera coordinates
    t = tvec.ravel()
    # The facing direction's angles minus those of the direction back to the camera, so a
    # face off the image's centre that looks at the camera reads 0.
    yaw = math.atan2(facing[0], -facing[2]) - math.atan2(-t[0], t[2])
    pitch = (math.atan2(-facing[1], math.hypot(facing[0], facing[2]))
             - math.atan2(t[1], math.hypot(t[0], t[2])))
    return math.degrees(yaw), math.degrees(pitch)


def yaw_proxy(landmarks: np.ndarray) -> float:
    """Where the nose tip sits between the two sides of the face outline, -100..100
    (0 = middle; + = towards the image's right). Unchanged by any affine warp of the
    picture. Printed by analyse_clip.py for comparison with :func:`head_pose`."""
    a, b = landmarks[0], landmarks[16]
    span = b - a
    return float((np.dot(landmarks[30] - a, span) / np.dot(span, span) - 0.5) * 200)


def pitch_proxy(landmarks: np.ndarray) -> float:
    """Where the nose tip sits between the eye line (0) and the mouth line (1); smaller
    when looking up. Affine-invariant too."""
    eyes = (landmarks[36] + landmarks[45]) / 2
    mouth = (landmarks[48] + landmarks[54]) / 2
    axis = mouth - eyes
    return float(np.dot(landmarks[30] - eyes, axis) / np.dot(axis, axis))


def face_width(landmarks: np.ndarray) -> float:
    """Width of the face: from one end of the landmark outline to the other (points 0, 16)."""
    return float(np.linalg.norm(landmarks[16] - landmarks[0]))


# --------------------------------------------------------------------------- 3-D evidence


def landmark_parallax(frontal: np.ndarray, turned: np.ndarray, points: Sequence[int] = RIGID_POINTS) -> float:
    """RMS distance, as a share of the frontal face's width, between the frontal frame's
    landmarks and the turned frame's mapped onto them by the best homography.

    In theory near 0 for a flat picture (a plane maps to a plane by a homography whatever
    the tilt) and larger for a real head. Measured (NOTES.md): tilted flat photos reach
    0.05 because dlib's landmark model reads them partly as turned heads, while the
    Hamilton clip's 12-degree turns give 0.016-0.031; so it is reported, not decided on.
    """
    import cv2

    src = turned[list(points)].astype(np.float64)
    dst = frontal[list(points)].astype(np.float64)
    matrix, _ = cv2.findHomography(src, dst, 0)  # least squares over all points
    if matrix is None:
        return float("inf")
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2), matrix).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum((mapped - dst) ** 2, axis=1))) / face_width(frontal))


@dataclass(frozen=True)
class TextureMotion:
    """How texture points of the face moved from the frontal frame to the turned one."""

    tracks: int  # points followed all the way
    homography_median: float  # median distance from the best homography, share of face width
    homography_p80: float  # its 80th percentile
    epipolar_median: float  # median distance from the epipolar lines of the best fundamental matrix
    ratio: float  # homography_median / (epipolar_median + 0.05 px)


def track_texture(grays: Sequence[np.ndarray], frontal_landmarks: np.ndarray) -> TextureMotion | None:
    """Texture points of the face followed from the first gray frame (the frontal one)
    through each following one to the last (the turned one), and how well one homography
    explains their motion.

    A flat picture's texture moves exactly by a homography (median 0.003 of the face's
    width on sharp faces, the tracking noise), a turning head's does not. A fundamental
    matrix explains both (the head is rigid), so the ratio of the homography's residual to
    the fundamental matrix's compares the model of a plane with that of a rigid 3-D body
    on the same points and the same noise, which makes it less sensitive to face size and
    blur than the residual alone. Unlike landmarks, no learned face model is involved.
    Points are followed frame to frame (pyramidal Lucas-Kanade) and dropped when the
    backward track does not come back to where it started. None when fewer than 10 survive.
    """
    import cv2

    width = face_width(frontal_landmarks)
    mask = np.zeros(grays[0].shape[:2], np.uint8)
    hull = cv2.convexHull(frontal_landmarks[_TEXTURE_REGION].astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 255)
    corners = cv2.goodFeaturesToTrack(grays[0], 300, 0.003, max(2.0, width / 50), mask=mask, blockSize=5)
    if corners is None or len(corners) < 10:
        return None
    start = corners.reshape(-1, 2).astype(np.float32)
    current = start.copy()
    alive = np.ones(len(start), bool)
    flow = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for before, after in zip(grays[:-1], grays[1:]):
        ahead, found, _ = cv2.calcOpticalFlowPyrLK(before, after, current.reshape(-1, 1, 2), None, **flow)
        back, found_back, _ = cv2.calcOpticalFlowPyrLK(after, before, ahead, None, **flow)
        error = np.linalg.norm(back.reshape(-1, 2) - current, axis=1)
        alive &= (found.ravel() == 1) & (found_back.ravel() == 1) & (error < max(0.5, width * 0.01))
        current = ahead.reshape(-1, 2)
    if alive.sum() < 10:
        return None
    end, start = current[alive], start[alive]
    homography, _ = cv2.findHomography(end, start, cv2.RANSAC, max(1.0, width * 0.01))
    fundamental, _ = cv2.findFundamentalMat(end, start, cv2.FM_LMEDS)
    if homography is None or fundamental is None or fundamental.shape != (3, 3):
        return None
    off_plane = np.linalg.norm(cv2.perspectiveTransform(end.reshape(-1, 1, 2), homography).reshape(-1, 2) - start,
                               axis=1)
    lines = np.column_stack([end, np.ones(len(end))]) @ fundamental.T  # epipolar lines in the frontal frame
    off_line = np.abs(np.sum(lines * np.column_stack([start, np.ones(len(start))]), axis=1)) / np.hypot(
        lines[:, 0], lines[:, 1])
    # +0.05 px: a floor for the noise, so that a perfect fit does not divide by zero.
    return TextureMotion(len(start), float(np.median(off_plane) / width), float(np.percentile(off_plane, 80) / width),
                         float(np.median(off_line) / width),
                         float(np.median(off_plane) / (np.median(off_line) + 0.05)))


def shape_motion(landmark_sets: Sequence[np.ndarray]) -> float:
    """How much the face's landmark shape changes over the video: the 90th percentile of
    each frame's RMS distance from the median shape, after removing position and scale.
    About 0 for a still picture (codec noise only)."""
    if len(landmark_sets) < 2:
        return 0.0
    shapes = []
    for points in landmark_sets:
        centred = points - points.mean(axis=0)
        shapes.append(centred / np.sqrt(np.mean(np.sum(centred ** 2, axis=1))))
    shapes = np.array(shapes)
    median = np.median(shapes, axis=0)
    distances = np.sqrt(np.mean(np.sum((shapes - median) ** 2, axis=2), axis=1))
    return float(np.percentile(distances, 90))


# --------------------------------------------------------------------------- per frame


def _detect_largest(rgb: np.ndarray, previous: tuple[int, int, int, int] | None):
    """The largest face's dlib rectangle and the number of faces found, searching first
    around the previous frame's face (cheap), then the whole frame."""
    detector = frontal_detector()
    dlib, _ = _landmarks68()
    height, width = rgb.shape[:2]
    if previous is not None:
        left, top, right, bottom = previous
        size = max(right - left, bottom - top)
        x0, y0 = max(0, left - size), max(0, top - size)
        x1, y1 = min(width, right + size), min(height, bottom + size)
        rects, _, _ = detector.run(np.ascontiguousarray(rgb[y0:y1, x0:x1]), 0, -0.2)
        if len(rects):
            rect = max(rects, key=lambda r: r.area())
            return dlib.rectangle(rect.left() + x0, rect.top() + y0, rect.right() + x0, rect.bottom() + y0), len(rects)
    # Upsampling 0: faces from about 80 px of a frame of at most 640 px (a selfie's face is
    # far larger). -0.2 admits the turned faces the detector scores low.
    rects, _, _ = detector.run(rgb, 0, -0.2)
    if not len(rects):
        return None, 0
    return max(rects, key=lambda r: r.area()), len(rects)


def observe_faces(frames: Sequence[VideoFrame]) -> list[FaceObservation]:
    """The largest face of each frame with its landmarks and pose (no embedding yet)."""
    _, predictor68 = _landmarks68()
    observations = []
    previous = None
    for index, frame in enumerate(frames):
        rgb = np.ascontiguousarray(frame.rgb, dtype=np.uint8)
        rect, count = _detect_largest(rgb, previous)
        if rect is None:
            previous = None
            continue
        landmarks = np.array([(p.x, p.y) for p in predictor68(rgb, rect).parts()], np.float64)
        yaw, pitch = head_pose(landmarks, (rgb.shape[1], rgb.shape[0]))
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        observations.append(FaceObservation(index, frame.time_s, box, landmarks, yaw, pitch, count))
        previous = box
    return observations


def embed_observations(frames: Sequence[VideoFrame], observations: list[FaceObservation], reference: np.ndarray,
                       wanted: set[int]) -> None:
    """Add embedding and distance to the observations at these indices (in place)."""
    for index in sorted(wanted):
        o = observations[index]
        if o.embedding is not None:
            continue
        embedding = embed_face(frames[o.frame_index].rgb, o.box)
        distance = float(np.min(np.linalg.norm(reference - embedding, axis=1)))
        observations[index] = replace(o, embedding=embedding, distance=distance)


def periodic(observations: Sequence[FaceObservation], every_s: float) -> set[int]:
    """Indices of observations at least ``every_s`` apart, from the first."""
    chosen, last = set(), -math.inf
    for index, o in enumerate(observations):
        if o.time_s - last >= every_s - 1e-6:
            chosen.add(index)
            last = o.time_s
    return chosen


# --------------------------------------------------------------------------- turns


def neutral_pose(observations: Sequence[FaceObservation], config: LivenessConfig) -> tuple[float, float]:
    """(yaw, pitch) at rest. Yaw: 0, facing the camera (the person looks at the screen);
    the generic 3-D face reads a frontal head within a few degrees (Miranda's frontal
    frames: -1.3 to +0.1). Not the first frames' yaw: a turn may start at once, and a
    picture of a turned face would then count as facing the camera. Pitch: the median of
    the frames facing the camera sideways, since a phone held low or high shifts it."""
    facing = [o.pitch for o in observations if abs(o.yaw) < config.turn_yaw_deg]
    return 0.0, float(np.median(facing if facing else [o.pitch for o in observations]))


def pose_states(observations: Sequence[FaceObservation], config: LivenessConfig,
                neutral: tuple[float, float]) -> list[str]:
    """Each observation's state: centre / image_left / image_right / up / down. Yaw wins
    when both are beyond their limits: turning sideways often tilts the head a little,
    and yaw is the steadier estimate."""
    neutral_yaw, neutral_pitch = neutral
    states = []
    for o in observations:
        yaw, pitch = o.yaw - neutral_yaw, o.pitch - neutral_pitch
        if yaw >= config.turn_yaw_deg:
            states.append("image_right")
        elif yaw <= -config.turn_yaw_deg:
            states.append("image_left")
        elif pitch >= config.turn_pitch_deg:
            states.append("up")
        elif pitch <= -config.turn_pitch_deg:
            states.append("down")
        else:
            states.append(CENTRE)
    return states


def find_turns(observations: Sequence[FaceObservation], config: LivenessConfig,
               neutral: tuple[float, float]) -> list[TurnEvent]:
    """Turns seen, in time order: runs of one non-centre state lasting at least
    ``min_turn_s``. Shorter runs (jitter) are dropped, and runs of one direction separated
    only by dropped runs merge into one turn. A turn must be seen starting from the
    centre: a run at the very start is no turn."""
    states = pose_states(observations, config, neutral)
    runs = []  # [state, first index, last index]
    for index, state in enumerate(states):
        if runs and runs[-1][0] == state:
            runs[-1][2] = index
        else:
            runs.append([state, index, index])

    def lasting(run) -> bool:
        # From the run's first sample to the sample after its last (one sampling interval).
        last = min(run[2] + 1, len(observations) - 1)
        return observations[last].time_s - observations[run[1]].time_s >= config.min_turn_s

    turns: list[TurnEvent] = []
    seen_centre = False
    pending = None
    for run in runs:
        state = run[0]
        if state == CENTRE:
            if lasting(run) or run[1] == 0:
                seen_centre = True
                if pending is not None:
                    turns.append(_turn(observations, pending, neutral))
                    pending = None
            continue
        if not lasting(run):
            continue
        if pending is not None and pending[0] == state:
            pending[2] = run[2]  # the same turn, interrupted by a short dip
            continue
        if pending is not None:
            turns.append(_turn(observations, pending, neutral))
            pending = None
        if seen_centre:
            pending = list(run)
    if pending is not None:
        turns.append(_turn(observations, pending, neutral))
    return turns


def _turn(observations, run, neutral) -> TurnEvent:
    state, first, last = run
    span = range(first, last + 1)
    if state in ("image_left", "image_right"):
        peak = max(span, key=lambda i: abs(observations[i].yaw - neutral[0]))
        angle = observations[peak].yaw - neutral[0]
    else:
        peak = max(span, key=lambda i: abs(observations[i].pitch - neutral[1]))
        angle = observations[peak].pitch - neutral[1]
    return TurnEvent(state, observations[first].time_s, observations[last].time_s, peak, float(angle))


def frontal_before(observations: Sequence[FaceObservation], states: Sequence[str], turn: TurnEvent,
                   neutral: tuple[float, float]) -> int | None:
    """The observation to compare a turn with: the most frontal one of the centre stretch
    just before the turn (so texture can be followed without a gap), else any centre one."""
    first = next(i for i, o in enumerate(observations) if o.time_s >= turn.start_s)
    stretch = []
    index = first - 1
    while index >= 0 and states[index] == CENTRE:
        stretch.append(index)
        index -= 1
    pool = stretch or [i for i, s in enumerate(states) if s == CENTRE]
    if not pool:
        return None
    return min(pool, key=lambda i: math.hypot(observations[i].yaw - neutral[0], observations[i].pitch - neutral[1]))


def to_person_directions(image_directions: Sequence[str], mirrored: bool) -> list[str]:
    """Image directions as the person's own: in an unmirrored video the person's left is
    the image's right."""
    table = {"image_left": "left" if mirrored else "right", "image_right": "right" if mirrored else "left",
             "up": "up", "down": "down"}
    return [table[d] for d in image_directions]


def _inside(landmarks: np.ndarray, shape: tuple[int, ...], margin: float) -> bool:
    pad = margin * face_width(landmarks)
    height, width = shape[:2]
    return bool(landmarks[:, 0].min() >= pad and landmarks[:, 1].min() >= pad
                and landmarks[:, 0].max() <= width - pad and landmarks[:, 1].max() <= height - pad)


def measure_turn(frames: Sequence[VideoFrame], observations: Sequence[FaceObservation], states: Sequence[str],
                 turn: TurnEvent, neutral: tuple[float, float], config: LivenessConfig) -> TurnEvent:
    """The turn with its 3-D evidence: both parallaxes between its frontal frame and its peak."""
    import cv2

    frontal = frontal_before(observations, states, turn, neutral)
    if frontal is None:
        return turn
    front, peak = observations[frontal], observations[turn.peak]
    grays = [cv2.cvtColor(np.ascontiguousarray(frames[i].rgb), cv2.COLOR_RGB2GRAY)
             for i in range(front.frame_index, peak.frame_index + 1)]
    shape = frames[peak.frame_index].rgb.shape
    return replace(turn, frontal=frontal, landmark_parallax=landmark_parallax(front.landmarks, peak.landmarks),
                   texture=track_texture(grays, front.landmarks),
                   face_px=min(face_width(front.landmarks), face_width(peak.landmarks)),
                   inside=(_inside(front.landmarks, shape, config.edge_margin)
                           and _inside(peak.landmarks, shape, config.edge_margin)))


# --------------------------------------------------------------------------- the check


def random_prompts(count: int = 3, directions: Sequence[str] = DIRECTIONS) -> list[str]:
    """``count`` prompts from a cryptographic random source, no direction twice in a row."""
    prompts: list[str] = []
    while len(prompts) < count:
        choice = secrets.choice(list(directions))
        if not prompts or prompts[-1] != choice:
            prompts.append(choice)
    return prompts


def describe(directions: Sequence[str]) -> str:
    """E.g. "turn to your left, then turn to your right"."""
    return ", then ".join(_PHRASES[d] for d in directions) if directions else "make no movement"


def check_liveness(video: str | Path | SampledVideo | Sequence[VideoFrame], prompts: Sequence[str],
                   reference_embeddings: np.ndarray, config: LivenessConfig = LivenessConfig()) -> LivenessResult:
    """Check a selfie video against the prompts and the person's reference embeddings.

    ``video``: a path (read with :func:`read_video`), a :class:`SampledVideo`, or frames
    (already sampled and downscaled: they are used as given, up to ``max_frames``).
    ``prompts``: directions from :data:`DIRECTIONS`, in the order asked.
    ``reference_embeddings``: (n, 128) of the enrolled photos.
    Every problem found is reported, in words for the person.
    """
    started = time.perf_counter()
    for prompt in prompts:
        if prompt not in DIRECTIONS:
            raise ValueError(f"unknown prompt {prompt!r} (one of: {', '.join(DIRECTIONS)})")
    if config.mirror not in ("unmirrored", "mirrored", "either"):
        raise ValueError(f"unknown mirror setting {config.mirror!r}")
    reference = np.atleast_2d(np.asarray(reference_embeddings, np.float32))
    problems: list[str] = []
    measurements: dict = {"prompts": list(prompts)}

    def result(needs_review: bool = False) -> LivenessResult:
        measurements["seconds"] = round(time.perf_counter() - started, 2)
        return LivenessResult(not problems, problems, measurements, needs_review)

    if isinstance(video, (str, Path)):
        try:
            video = read_video(video, config)
        except ValueError:
            problems.append(MESSAGES["no_video"])
            return result()
    if isinstance(video, SampledVideo):
        sampled = video
    else:
        frames = list(video)
        sampled = SampledVideo(frames, frames[-1].time_s if frames else 0.0, 0.0, False)
    frames = sampled.frames
    if sampled.too_long or sampled.duration_s > config.max_seconds + 0.05:
        problems.append(MESSAGES["too_long"].format(max_seconds=config.max_seconds))
        frames = [f for f in frames if f.time_s <= config.max_seconds]
    frames = frames[: config.max_frames]
    measurements.update(duration_s=round(sampled.duration_s, 2), frames_checked=len(frames))
    if not frames:
        problems.append(MESSAGES["no_video"])
        return result()

    observations = observe_faces(frames)
    face_share = len(observations) / len(frames)
    measurements["face_share"] = round(face_share, 3)
    if len(observations) < 3:
        problems.append(MESSAGES["no_face"])
        return result()
    if face_share < config.min_face_share:
        problems.append(MESSAGES["few_faces"].format(percent=100 * face_share))

    # Turns (pose from landmarks) first: their frames are embedded as evidence.
    neutral = neutral_pose(observations, config)
    states = pose_states(observations, config, neutral)
    turns = [measure_turn(frames, observations, states, t, neutral, config)
             for t in find_turns(observations, config, neutral)]
    evidence = {t.peak for t in turns} | {t.frontal for t in turns if t.frontal is not None}
    embed_observations(frames, observations, reference, periodic(observations, config.embed_every_s) | evidence)

    # 1. Identity: the mean embedding against the references; no other face on the way.
    embedded = [o for o in observations if o.embedding is not None]
    distances = np.array([o.distance for o in embedded])
    mean_embedding = np.mean([o.embedding for o in embedded], axis=0)
    distance = float(np.min(np.linalg.norm(reference - mean_embedding, axis=1)))
    other_share = float(np.mean(distances > config.other_face_distance))
    measurements.update(embedded_frames=len(embedded), distance=round(distance, 3),
                        frame_distances=[round(float(np.min(distances)), 3), round(float(np.median(distances)), 3),
                                         round(float(np.max(distances)), 3)],
                        other_face_share=round(other_share, 3))
    needs_review = False
    if distance > config.review_threshold:
        problems.append(MESSAGES["mismatch"])
    else:
        evidence_other = any(observations[i].distance > config.other_face_distance for i in evidence)
        if other_share > config.max_other_face_share or evidence_other:
            problems.append(MESSAGES["other_face"])
        if distance > config.match_threshold:
            problems.append(MESSAGES["uncertain"])
            needs_review = True

    # 2. Still picture.
    motion = shape_motion([o.landmarks for o in observations])
    yaws = [o.yaw - neutral[0] for o in observations]
    pitches = [o.pitch - neutral[1] for o in observations]
    measurements.update(shape_motion=round(motion, 4), neutral_yaw=round(neutral[0], 1),
                        neutral_pitch=round(neutral[1], 1),
                        yaw_range=[round(min(yaws), 1), round(max(yaws), 1)],
                        pitch_range=[round(min(pitches), 1), round(max(pitches), 1)])
    still = motion < config.min_shape_motion
    if still:
        problems.append(MESSAGES["still"])

    # 3. Turns and their order.
    image_directions = [t.direction for t in turns]
    readings = {"unmirrored": [False], "mirrored": [True], "either": [False, True]}[config.mirror]
    mirrored, seen = readings[0], to_person_directions(image_directions, readings[0])
    for reading in readings[1:]:
        if seen != list(prompts) and to_person_directions(image_directions, reading) == list(prompts):
            mirrored, seen = reading, list(prompts)
    measurements.update(mirrored_reading=mirrored, turns_seen=seen,
                        turns=[_turn_summary(d, t, observations) for d, t in zip(seen, turns)])
    if not still and seen != list(prompts):
        problems += _order_problems(list(prompts), seen)

    # 4. Flat picture: every turn must show parallax in both measurements, on a face
    # large enough and inside the frame for them to mean something.
    if turns and not still:
        if any(t.face_px < config.min_face_px or not t.inside for t in turns):
            problems.append(MESSAGES["small"])
        elif any(t.frontal is None or t.texture is None for t in turns):
            problems.append(MESSAGES["untracked"])
        elif not all(is_3d(t, config) for t in turns):
            problems.append(MESSAGES["flat"])

    return result(needs_review and all(p == MESSAGES["uncertain"] for p in problems))


def is_3d(turn: TurnEvent, config: LivenessConfig) -> bool:
    """Whether a measured turn shows the parallax of a real head: its texture moved in a
    way one homography does not explain (a flat picture's does), both in absolute terms
    and against a rigid 3-D motion fitted to the same points. The landmark parallax is
    only reported: measured, it does not separate flat pictures from real turns."""
    return (turn.texture is not None and turn.texture.homography_p80 >= config.min_off_plane
            and turn.texture.ratio >= config.min_plane_to_rigid_ratio)


def _turn_summary(direction: str, turn: TurnEvent, observations: Sequence[FaceObservation]) -> dict:
    peak = observations[turn.peak]
    return {
        "direction": direction, "start_s": round(turn.start_s, 2), "end_s": round(turn.end_s, 2),
        "peak_s": round(peak.time_s, 2), "peak_deg": round(turn.peak_angle, 1),
        "frontal_s": None if turn.frontal is None else round(observations[turn.frontal].time_s, 2),
        "peak_distance": None if peak.distance is None else round(peak.distance, 3),
        "landmark_parallax": None if turn.landmark_parallax is None else round(turn.landmark_parallax, 4),
        "texture": None if turn.texture is None else {
            key: round(value, 4) for key, value in vars(turn.texture).items()},
        "face_px": round(turn.face_px), "inside": turn.inside,
    }


def _order_problems(asked: list[str], seen: list[str]) -> list[str]:
    """Words for how the turns seen differ from the prompted ones."""
    missing = [d for d in asked if asked.count(d) > seen.count(d)]
    problems = [MESSAGES["missing_turn"].format(what=_MISSING[d]) for d in dict.fromkeys(missing)]
    if not missing:
        if sorted(seen) == sorted(asked):
            problems.append(MESSAGES["order"].format(seen=describe(seen), asked=describe(asked)))
        else:
            problems.append(MESSAGES["extra"].format(seen=describe(seen)))
    return problems


# --------------------------------------------------------------------------- I/O


def read_video(path: str | Path, config: LivenessConfig = LivenessConfig(), max_pixels: int = 100_000_000) -> SampledVideo:
    """Frames of a video file, sampled so the work per video is bounded: at most
    ``sample_fps`` frames a second, of the first ``max_seconds`` only, at most
    ``max_frames``, each downscaled so its longest side is at most ``max_side``.
    OpenCV applies the file's rotation metadata (phones record portrait video as
    landscape plus a rotation flag). Raises ValueError when the file cannot be read."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"cannot open {path}")
    try:
        if capture.get(cv2.CAP_PROP_FRAME_WIDTH) * capture.get(cv2.CAP_PROP_FRAME_HEIGHT) > max_pixels:
            raise ValueError("frames over the pixel limit")  # refused before any is decoded
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        frames: list[VideoFrame] = []
        next_time, index, last_time, too_long = 0.0, 0, 0.0, False
        while capture.grab():
            position = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            # Some containers report no timestamps; fall back on the frame rate.
            time_s = position if position > 0 or index == 0 else (index / fps if fps else 0.0)
            index += 1
            # A file with no usable timestamps and no frame rate must not be read to its end.
            if time_s > config.max_seconds or index > config.max_seconds * 240:
                too_long = True
                break
            last_time = time_s
            if time_s + 1e-6 < next_time or len(frames) >= config.max_frames:
                continue
            ok, bgr = capture.retrieve()
            if not ok:
                break
            height, width = bgr.shape[:2]
            scale = config.max_side / max(height, width)
            if scale < 1:
                bgr = cv2.resize(bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
            frames.append(VideoFrame(time_s, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
            next_time = time_s + 1.0 / config.sample_fps
        if index == 0:
            raise ValueError(f"no frames in {path}")
        duration = count / fps if fps and count else last_time
        return SampledVideo(frames, max(duration, last_time), fps, too_long)
    finally:
        capture.release()


def check_liveness_upload(data: bytes, prompts: Sequence[str], reference_embeddings: np.ndarray,
                          config: LivenessConfig = LivenessConfig(), max_pixels: int = 100_000_000) -> LivenessResult:
    """:func:`check_liveness` of an uploaded video's bytes (written to a private temporary file:
    OpenCV reads videos from a path), its frames refused over ``max_pixels`` before decoding."""
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".video") as handle:
        handle.write(data)
        handle.flush()
        try:
            video = read_video(handle.name, config, max_pixels)
        except ValueError:
            return LivenessResult(False, [MESSAGES["no_video"]], {"prompts": list(prompts)})
        return check_liveness(video, prompts, reference_embeddings, config)
