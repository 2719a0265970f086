"""dlib's HOG face detector, searching the whole image as face_recognition does."""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.geometry import box_from_rect, downscale
from matcher.faces.model_cache import cached_file, key_of
from matcher.model import Box

# dlib's frontal HOG detector finds faces of at least about this many pixels.
HOG_WINDOW = 80


@functools.cache
def frontal_detector():
    """dlib's HOG detector, loaded once per process on first use: from the model cache, where dlib's
    own binary form loads in milliseconds (``get_frontal_face_detector`` decodes it from text in ~0.6 s)."""
    import dlib  # heavy native import: only when a face is first needed

    kept = cached_file("dlib-frontal-face-detector", key_of("dlib", dlib.__version__),
                       lambda path: dlib.get_frontal_face_detector().save(str(path)))
    if kept is not None:
        try:
            return dlib.fhog_object_detector(str(kept))
        except RuntimeError:  # unreadable to this dlib: decode its own below
            pass
    return dlib.get_frontal_face_detector()


class HogDetector:
    """HOG over a copy of the image whose longest side is at most ``detect_max_side``,
    upsampled ``upsample`` times (once: faces down to ~40 px of that copy are found).

    ``min_face``: the smallest face of interest, in pixels of the original; the
    copy is then sized so that such a face spans the detector's window.
    """

    def __init__(self, detect_max_side: int = 1600, upsample: int = 1, min_face: int | None = None):
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self.min_face = min_face

    def detection_plan(self, height: int, width: int, scale: float = 1.0) -> tuple[int, int]:
        """(longest side of the detection copy, upsampling) for an image of this size.

        By default: at most ``detect_max_side``, upsampled once (face_recognition's
        CLI does the same). With ``min_face`` (in pixels of the original, which is
        ``scale`` times this image): the copy is sized so that such a face spans
        the HOG window without upsampling (about a third of the work of
        upsampling), or 40 px with it when the face is smaller than the window
        even at full size.
        """
        longest = max(height, width)
        if self.min_face is None:
            return min(longest, self.detect_max_side), self.upsample
        ratio = HOG_WINDOW * scale / self.min_face  # detection pixels per image pixel
        if ratio <= 1:
            return max(HOG_WINDOW, round(longest * ratio)), 0
        return min(longest, round(longest * ratio / 2)), 1

    def decode_side(self, height: int, width: int) -> int:
        return self.detection_plan(height, width)[0]

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        side, upsample = self.detection_plan(*rgb.shape[:2], scale=scale)
        small, zoom = downscale(rgb, side)
        return [box_from_rect(rect, zoom, rgb.shape) for rect in frontal_detector()(small, upsample)]
