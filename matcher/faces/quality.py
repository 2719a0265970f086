"""Measured quality of a face as seen: how wide it is, how sharp, how lit, whether its lower face shows.

Face width (in pixels of the original) and sharpness are what decides how far
an embedding can be trusted (models/dlib_resnet_v1.md, per-band tables): they
are stored with each observed face and given to the rules as facts.
"""

from __future__ import annotations

import numpy as np

from matcher.faces.geometry import upright_crop
from matcher.model import Box, FaceQuality

SHARPNESS_SIDE = 150  # the face is measured at this size, so sharpness does not depend on its width
# Where the nose and mouth are, and the eyes and brows, in a face's box scaled to 150 px (HOG's box,
# or the one a proposal gives in its stead): rows, columns.
LOWER_FACE = (slice(90, 135), slice(35, 115))
UPPER_FACE = (slice(15, 65), slice(15, 135))
# A lower face with less fine texture than this share of the upper face's is covered by something
# flat (a plain mask, a scarf, a block): bench/cover_measure.py on the lfw10 and bbt faces, clean
# and degraded as uploads are (40/60 px, JPEG 20, blurred, motion-blurred, dark with noise, grey:
# 1,106 faces the scan saw whole), none under 0.27; of the faces HOG still saw whole behind a flat
# cover, 58 of 71 under 0.15. A textured cover (fabric grain, pleats) has texture of its own and is
# not told (0 of 167 with grain of sigma 4 or more or pleats): models/dlib_resnet_v1.md. The median,
# not the mean: a cover's edge is a line of texture in a flat patch. The enrollment gate refuses
# references under it.
COVERED_LOWER_TEXTURE = 0.15
# Eyes and brows with less texture than this (grey levels of the absolute Laplacian) give the
# ratio nothing to stand on: an almost black face, a flat picture. Their lower face is unknown.
FLAT_UPPER_FACE = 0.2


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


def lower_texture(rgb: np.ndarray, box: Box) -> float | None:
    """How much fine texture the lower face (nose, mouth) shows for the upper face's (eyes, brows),
    measured upright: about 1 for a face seen whole, near 0 for one behind a mask (None: no face)."""
    if box.angle:
        rgb, box = upright_crop(rgb, box)
    return _lower_texture_of(face_grey(rgb, box))


def _lower_texture_of(grey: np.ndarray | None) -> float | None:
    """``lower_texture`` of an upright face's crop in grey at 150 px (None: no crop)."""
    import cv2

    if grey is None:
        return None
    detail = np.abs(cv2.Laplacian(cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0), cv2.CV_32F))
    upper = float(np.median(detail[UPPER_FACE]))
    if upper < FLAT_UPPER_FACE:
        return None  # nothing to compare with (a face too dark to show texture, a flat picture): unknown
    return round(float(np.median(detail[LOWER_FACE])) / upper, 3)


def covered(rgb: np.ndarray, box: Box) -> bool:
    """The face's lower face looks covered (see COVERED_LOWER_TEXTURE)."""
    texture = lower_texture(rgb, box)
    return texture is not None and texture < COVERED_LOWER_TEXTURE


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
        # The crop above, unless the face must be turned upright first.
        lower_texture=lower_texture(rgb, box) if box.angle else _lower_texture_of(grey),
    )
