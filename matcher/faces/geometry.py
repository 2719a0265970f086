"""Box geometry shared by the detectors and the scan: scaling, clipping, overlap."""

from __future__ import annotations

import numpy as np

from matcher.model import Box


def scale_box(box: Box, scale: float, shape: tuple) -> Box:
    """``box`` multiplied by ``scale``, clipped to an image of ``shape`` (height, width, ...)."""
    if scale == 1:
        return box
    height, width = shape[:2]
    return Box(
        top=max(0, round(box.top * scale)),
        right=min(width, round(box.right * scale)),
        bottom=min(height, round(box.bottom * scale)),
        left=max(0, round(box.left * scale)),
        angle=box.angle,
        frontal=box.frontal,
    )


def shift_box(box: Box, down: int, right: int) -> Box:
    """``box`` moved by whole pixels (into the coordinates of a part of its picture)."""
    return Box(box.top + down, box.right + right, box.bottom + down, box.left + right, box.angle, box.frontal)


def upright(rgb: np.ndarray, centre: tuple[float, float], angle: float, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``side`` x ``side`` crop of ``rgb`` around ``centre`` (x, y), turned by ``-angle`` degrees so that
    a face tilted by ``angle`` stands upright in it; and the 2x3 matrix from the crop back to ``rgb``."""
    import cv2

    to_crop = cv2.getRotationMatrix2D(centre, -angle, 1.0)
    to_crop[:, 2] += (side / 2 - centre[0], side / 2 - centre[1])
    crop = cv2.warpAffine(rgb, to_crop, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, cv2.invertAffineTransform(to_crop)


def upright_crop(rgb: np.ndarray, box: Box) -> tuple[np.ndarray, Box]:
    """A crop around a tilted face, turned so it stands upright, and the face's box in it."""
    half = max(box.width, box.height) / 2
    side = max(2, round(4 * half))
    crop, _ = upright(rgb, ((box.left + box.right) / 2, (box.top + box.bottom) / 2), box.angle, side)
    return np.ascontiguousarray(crop), Box(round(side / 2 - half), round(side / 2 + half), round(side / 2 + half),
                                           round(side / 2 - half))


def box_from_rect(rect, zoom: float, shape: tuple, top: int = 0, left: int = 0) -> Box:
    """A dlib rectangle found on a copy ``zoom`` times the size of the image region at
    (``top``, ``left``), as a box in the image's coordinates, clipped to its ``shape``."""
    height, width = shape[:2]
    return Box(
        top=max(0, round(top + rect.top() / zoom)),
        right=min(width, round(left + rect.right() / zoom)),
        bottom=min(height, round(top + rect.bottom() / zoom)),
        left=max(0, round(left + rect.left() / zoom)),
    )


def overlap(a, b) -> float:
    """Intersection over union of two boxes (anything with top, right, bottom and left)."""
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    union = (a.right - a.left) * (a.bottom - a.top) + (b.right - b.left) * (b.bottom - b.top) - inter
    return inter / union if union > 0 else 0.0


def same_face(a, b) -> bool:
    """Two boxes found for one face: they overlap by half their union, or one lies wholly
    inside the other (as dlib's own detector suppresses its duplicates)."""
    def inside(inner, outer) -> bool:
        return (inner.top >= outer.top and inner.left >= outer.left
                and inner.bottom <= outer.bottom and inner.right <= outer.right)

    return overlap(a, b) >= 0.5 or inside(a, b) or inside(b, a)


def centre_within(a, b) -> bool:
    """The centre of either box lies in the other: the looser test for a box that only a face
    proposal gave (its side is a guess; a face turned sideways was proposed at 1.7 times the
    side of the box HOG gave it on the upright crop)."""
    def centre_in(inner, outer) -> bool:
        x, y = (inner.left + inner.right) / 2, (inner.top + inner.bottom) / 2
        return outer.left <= x <= outer.right and outer.top <= y <= outer.bottom

    return centre_in(a, b) or centre_in(b, a)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longest side is at most ``max_side``, and the scale applied."""
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if longest <= max_side:
        return rgb, 1.0
    import cv2

    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale
