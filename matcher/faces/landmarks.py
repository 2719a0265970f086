"""From face boxes to dlib's aligned 150 px face chips: the 5-point landmarks and the chip cut.

Every ResNet runtime (dlib's own, our ONNX model in onnxruntime or OpenCV, PyTorch)
embeds these same chips, so they embed the same faces: ``dlib.get_face_chips`` cuts exactly the chips
dlib's ``compute_face_descriptor`` uses (checked, pixel for pixel).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.geometry import upright_crop
from matcher.faces.resnet_weights import CHIP_SIZE
from matcher.model import Box

CHIP_PADDING = 0.25  # dlib's compute_face_descriptor's
# A dark chip whose noise is more than this share of its contrast (a grainy low-light shot) is
# smoothed before it is embedded. Measured on lfw10 and bbt chips (models/dlib_resnet_v1.md):
# dark and noisy ones 0.05-0.30 (78 % above 0.08); clean, blurred, small, grey, dim and JPEG 20
# ones 0.00-0.08 (medians 0.01-0.02; 3 of 296 clean or dim faces above 0.08). Fine texture in
# a sharp, well-lit face reads as grain too, hence the darkness gate: a chip whose middle is
# under 50 of 255 had a face under 56 by the scan's own measure (the band `dark` is under 60)
# in all 258 such faces measured, so a smoothed face is judged by the band dark's thresholds
# (measured, with a margin; the two measures are not the same crop).
NOISE_TO_CONTRAST = 0.08
DARK_CHIP = 50


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
            crop, inside = upright_crop(rgb, box)
            chips[id(box)] = dlib.get_face_chip(crop, landmarks(crop, [inside])[0], size=CHIP_SIZE,
                                                padding=CHIP_PADDING)
    return np.stack([_smoothed_if_noisy(np.asarray(chips[id(box)], dtype=np.uint8)) for box in boxes])


def noise_to_contrast(grey: np.ndarray) -> float:
    """How noisy a chip (in grey) is for its contrast: Immerkaer's estimate of the noise's standard
    deviation (the mean of a 3x3 second-difference filter, blind to smooth shading), over the
    standard deviation of the chip's middle, where the face is."""
    import cv2

    grey = grey.astype(np.float32)
    second_difference = cv2.filter2D(grey, -1, _IMMERKAER)[1:-1, 1:-1]
    noise = np.sqrt(np.pi / 2) * float(np.abs(second_difference).mean()) / 6
    return noise / max(float(_middle(grey).std()), 1.0)


def _middle(grey: np.ndarray) -> np.ndarray:
    """The middle of a chip, where the face is (the rest is the padding around it)."""
    return grey[CHIP_SIZE // 5:CHIP_SIZE * 4 // 5, CHIP_SIZE // 5:CHIP_SIZE * 4 // 5]


_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def _smoothed_if_noisy(chip: np.ndarray) -> np.ndarray:
    """A dark, grainy chip smoothed (edges kept) and its levels stretched; any other chip as it is.
    On dark, noisy lfw10 and bbt faces it brought 70 % of them within 0.48 of their own references
    (66 % unsmoothed), 97 % within 0.62 (94 %), strangers within 0.62 1.6 % (1.9 %); smoothing a
    clean face costs a little, hence the gates."""
    import cv2

    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    if _middle(grey).mean() >= DARK_CHIP or noise_to_contrast(grey) <= NOISE_TO_CONTRAST:
        return chip
    smoothed = cv2.bilateralFilter(chip, 7, 30, 5).astype(np.float32)
    low, high = np.percentile(smoothed, (1, 99))
    return np.clip((smoothed - low) * (255.0 / max(high - low, 1.0)), 0, 255).astype(np.uint8)
