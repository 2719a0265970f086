"""From face boxes to dlib's aligned 150 px face chips: the 5-point landmarks and the chip cut.

Every ResNet runtime (dlib's own, our ONNX model in onnxruntime or OpenCV, PyTorch)
embeds these same chips, so they embed the same faces: ``dlib.get_face_chips`` cuts exactly the chips
dlib's ``compute_face_descriptor`` uses (checked, pixel for pixel).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.geometry import upright
from matcher.faces.resnet_weights import CHIP_SIZE
from matcher.model import Box

CHIP_PADDING = 0.25  # dlib's compute_face_descriptor's


@functools.cache
def shape_predictor(model_file: str = "shape_predictor_5_face_landmarks.dat"):
    """dlib and one of its landmark predictors (5 points by default), loaded once per process."""
    path = dlib_model(model_file)
    import dlib  # heavy native import: only when a face is first needed

    return dlib, dlib.shape_predictor(str(path))


def landmarks(rgb: np.ndarray, boxes: list[Box]):
    """dlib's ``full_object_detections``: 5 landmarks per box."""
    dlib, predictor = shape_predictor()
    shapes = dlib.full_object_detections()
    for box in boxes:
        shapes.append(predictor(rgb, dlib.rectangle(box.left, box.top, box.right, box.bottom)))
    return shapes


def face_chips(rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The aligned chips of ``boxes``: uint8 (N, 150, 150, 3) RGB. A tilted face (``box.angle``)
    is turned upright on a crop around it first: the landmark model was trained on upright faces."""
    if not boxes:
        return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
    dlib, _ = shape_predictor()
    upright_boxes = [box for box in boxes if not box.angle]
    chips = {}
    if upright_boxes:
        found = dlib.get_face_chips(rgb, landmarks(rgb, upright_boxes), size=CHIP_SIZE, padding=CHIP_PADDING)
        chips.update(zip((id(box) for box in upright_boxes), found))
    for box in boxes:
        if box.angle:
            crop, inside = _upright_crop(rgb, box)
            chips[id(box)] = dlib.get_face_chip(crop, landmarks(crop, [inside])[0], size=CHIP_SIZE,
                                                padding=CHIP_PADDING)
    return np.stack([np.asarray(chips[id(box)], dtype=np.uint8) for box in boxes])


def _upright_crop(rgb: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """A crop around a tilted face, turned so it stands upright, and the face's box in it."""
    half = max(box.width, box.height) / 2
    side = max(2, round(4 * half))
    crop, _ = upright(rgb, ((box.left + box.right) / 2, (box.top + box.bottom) / 2), box.angle, side)
    return np.ascontiguousarray(crop), Box(round(side / 2 - half), round(side / 2 + half), round(side / 2 + half),
                                           round(side / 2 - half))
