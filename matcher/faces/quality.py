"""Measured quality of a face as seen: how wide it is, how sharp, how lit.

Face width (in pixels of the original) and sharpness are what decides how far
an embedding can be trusted (models/dlib_resnet_v1.md, per-band tables): they
are stored with each observed face and given to the rules as facts.
"""

from __future__ import annotations

import numpy as np

from matcher.model import Box, FaceQuality

SHARPNESS_SIDE = 150  # the face is measured at this size, so sharpness does not depend on its width


def face_grey(rgb: np.ndarray, box: Box) -> np.ndarray | None:
    """The face's crop in grey, scaled to 150 x 150 (None for an empty box)."""
    import cv2

    crop = rgb[max(0, box.top):box.bottom, max(0, box.left):box.right]
    if crop.size == 0:
        return None
    # INTER_AREA both ways: the enrollment gate's limits were measured with it.
    return cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (SHARPNESS_SIDE, SHARPNESS_SIDE),
                      interpolation=cv2.INTER_AREA)


def sharpness(rgb: np.ndarray, box: Box) -> float:
    """Variance of the Laplacian of the face, scaled to 150 px grey: low means blurred."""
    grey = face_grey(rgb, box)
    return 0.0 if grey is None else _laplacian_variance(grey)


def _laplacian_variance(grey: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure(rgb: np.ndarray, box: Box, width_in_original: int) -> FaceQuality:
    """The quality facts of one face of ``rgb`` (``box`` in its coordinates)."""
    grey = face_grey(rgb, box)
    if grey is None:
        return FaceQuality(width_in_original, 0.0, 0.0, 0.0, box.frontal)
    return FaceQuality(
        width=width_in_original,
        sharpness=round(_laplacian_variance(grey), 1),
        brightness=round(float(grey.mean()), 1),
        contrast=round(float(grey.std()), 1),
        frontal=box.frontal,
    )
