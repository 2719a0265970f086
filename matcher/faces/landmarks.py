"""From face boxes to dlib's aligned 150 px face chips: the 5-point landmarks and the chip cut.

Every ResNet runtime (dlib's own, OpenCV's, PyTorch's) embeds these same chips,
so they embed the same faces: ``dlib.get_face_chips`` cuts exactly the chips
dlib's ``compute_face_descriptor`` uses (checked, pixel for pixel).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.resnet_weights import CHIP_SIZE
from matcher.model import Box

CHIP_PADDING = 0.25  # dlib's compute_face_descriptor's


@functools.cache
def _predictor():
    """dlib and its 5-point landmark predictor, loaded once per process."""
    path = dlib_model("shape_predictor_5_face_landmarks.dat")
    import dlib  # heavy native import: only when a face is first needed

    return dlib, dlib.shape_predictor(str(path))


def landmarks(rgb: np.ndarray, boxes: list[Box]):
    """dlib's ``full_object_detections``: 5 landmarks per box."""
    dlib, predictor = _predictor()
    shapes = dlib.full_object_detections()
    for box in boxes:
        shapes.append(predictor(rgb, dlib.rectangle(box.left, box.top, box.right, box.bottom)))
    return shapes


def face_chips(rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The aligned chips of ``boxes``: uint8 (N, 150, 150, 3) RGB."""
    if not boxes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    dlib, _ = _predictor()
    chips = dlib.get_face_chips(rgb, landmarks(rgb, boxes), size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.stack([np.asarray(chip, dtype=np.uint8) for chip in chips])
