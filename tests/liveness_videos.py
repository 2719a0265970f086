"""Liveness test videos, built at run time from the real files in ../shared/faces (nothing
is copied anywhere else): segments of the Hamilton clip joined in a prompted order, a
still photo held for 3 s, and a photo tilted in 3-D as a flat plane (a printed photo
held up to the camera and turned)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers import SHARED_FACES, write_video

EXAMPLES = SHARED_FACES / "face_recognition_peer" / "examples"
CLIP = EXAMPLES / "short_hamilton_clip.mp4"
MIRANDA = EXAMPLES / "lin-manuel-miranda.png"
LACAMOIRE = EXAMPLES / "alex-lacamoire.png"
OBAMA = EXAMPLES / "obama.jpg"

# Segments of the clip showing Lin-Manuel Miranda turning to his own left or right, chosen
# from analyse_clip.py's output; each is a list of pieces (start s, end s), a piece with
# start > end played backwards. The clip is an ordinary (unmirrored) camera view, so his
# left is the image's right. Each segment starts facing the camera, so the turn is seen
# happening. His shot alone on stage runs from 2.74 s (a cut) to 7.03 s (a cut).
SEGMENTS = {
    # His clearest turn to his left is the shot's first half second, where he comes back
    # from it (yaw +13.5 deg at 2.74 s to -0.7 at 3.20 s): played backwards then forwards
    # it is a real head turning left and back (time reversal keeps the 3-D geometry).
    "left": [(3.20, 2.74), (2.74, 3.20)],
    # A later, weaker turn to his left, with his head also going up (yaw +11, pitch +19).
    "left_b": [(4.90, 5.75)],
    "right": [(3.10, 4.00)],  # yaw 0 -> -25 deg at 3.7 s
    "right_b": [(5.90, 7.00)],  # yaw 0 -> -29 deg at 6.9 s
}


def load_rgb(path: Path) -> np.ndarray:
    import cv2

    bgr = cv2.imread(str(path))
    if bgr is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def clip_frames(path: Path = CLIP) -> tuple[list[np.ndarray], float]:
    """All frames of a video (RGB) and its frame rate."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, fps


def cut(frames: list[np.ndarray], fps: float, start: float, end: float) -> list[np.ndarray]:
    """Frames from ``start`` to ``end`` seconds ([start, end)); backwards when start > end."""
    if start > end:
        return cut(frames, fps, end, start)[::-1]
    return frames[int(math.ceil(start * fps - 1e-6)): int(math.ceil(end * fps - 1e-6))]


def segment(frames: list[np.ndarray], fps: float, name: str) -> list[np.ndarray]:
    return [frame for start, end in SEGMENTS[name] for frame in cut(frames, fps, start, end)]


def segments_video(path: Path, names: Sequence[str]) -> Path:
    """The clip's segments joined in this order (hard cuts between them)."""
    frames, fps = clip_frames()
    joined = []
    for name in names:
        joined += segment(frames, fps, name)
    return write_video(path, "mp4v", joined, fps)


def still_video(path: Path, photo: Path = MIRANDA, seconds: float = 3.0, fps: float = 30.0) -> Path:
    """One photo shown for ``seconds``."""
    rgb = _fit(load_rgb(photo))
    return write_video(path, "mp4v", [rgb] * int(seconds * fps), fps)


def _fit(rgb: np.ndarray, max_side: int = 640) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1:
        rgb = cv2.resize(rgb, (round(width * scale) // 2 * 2, round(height * scale) // 2 * 2),
                         interpolation=cv2.INTER_AREA)
    return rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]


def tilt_plane(rgb: np.ndarray, yaw_deg: float, pitch_deg: float, distance: float = 1.0,
               shift: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The picture as a flat plane turned by ``yaw_deg`` about its vertical axis, then
    ``pitch_deg`` about its horizontal axis, seen by a pinhole camera of focal length
    the image width, the plane's centre ``distance`` focal lengths away (1: it fills
    the frame as the flat picture did). yaw > 0 brings the image's right edge towards
    the camera... measured: see NOTES.md for which way landmark yaw then moves.
    ``shift``: the plane's centre moved by this share of the width / height (hand shake)."""
    import cv2

    height, width = rgb.shape[:2]
    focal = float(width)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    plane = np.column_stack([corners[:, 0] - width / 2, corners[:, 1] - height / 2, np.zeros(4)])
    a, b = math.radians(yaw_deg), math.radians(pitch_deg)
    about_vertical = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    about_horizontal = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    moved = plane @ (about_horizontal @ about_vertical).T
    moved[:, 0] += shift[0] * width
    moved[:, 1] += shift[1] * height
    moved[:, 2] += distance * focal
    projected = np.column_stack([focal * moved[:, 0] / moved[:, 2] + width / 2,
                                 focal * moved[:, 1] / moved[:, 2] + height / 2])
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), projected.astype(np.float32))
    return cv2.warpPerspective(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(40, 40, 40))


# The plane's angles (yaw, pitch) at the peak of each prompted movement. Signs chosen so
# that the landmark-based head pose of the tilted photo moves the way the prompt asks
# (unmirrored convention), as an attacker would tilt it: measured on Miranda's photo,
# plane yaw -30 reads +7 deg of head yaw (his left), +30 reads -3; plane pitch -25 reads
# +6 deg of head pitch (up), +25 reads -5.
PLANE_PEAKS = {"left": (-30.0, 0.0), "right": (30.0, 0.0), "up": (0.0, -25.0), "down": (0.0, 25.0)}


def flat_photo_video(path: Path, prompts: Sequence[str], photo: Path = MIRANDA, fps: float = 30.0,
                     degrees: float = 30.0, distance: float = 1.0, rest_s: float = 0.5, turn_s: float = 1.2,
                     shake: float = 0.01, seed: int = 0) -> Path:
    """The photo turned as a flat plane following the prompts: facing the camera, then for
    each prompt out to ``degrees`` and back (a smooth sine), with a little hand shake."""
    rng = np.random.default_rng(seed)
    rgb = _fit(load_rgb(photo))
    poses = [(0.0, 0.0)] * int(rest_s * fps)
    for prompt in prompts:
        peak_yaw, peak_pitch = PLANE_PEAKS[prompt]
        scale = degrees / 30.0
        steps = int(turn_s * fps)
        for step in range(steps):
            weight = math.sin(math.pi * step / steps)
            poses.append((peak_yaw * scale * weight, peak_pitch * scale * weight))
        poses += [(0.0, 0.0)] * int(rest_s * fps)
    frames = []
    drift = np.zeros(2)
    for yaw, pitch in poses:
        drift = 0.9 * drift + rng.normal(0, shake, 2)
        frames.append(tilt_plane(rgb, yaw, pitch, distance, (float(drift[0]), float(drift[1]))))
    return write_video(path, "mp4v", frames, fps)
