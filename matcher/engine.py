"""Face engines: find faces in an RGB array and turn each into an embedding.

An engine is anything with the small :class:`FaceEngine` interface, so another
embedding model can be plugged in beside dlib's (the way python-threatexchange
puts signal types behind one interface). Embeddings of different engines are
never compared: the store records which engine made each one.

:class:`DlibEngine` runs the same computation as face_recognition's ``api.py``
(HOG detector, 5-point landmarks, the ResNet descriptor of
``face_recognition_models``) but loads the models lazily, once per process,
without the side effects of ``import face_recognition`` (``quit()`` when models
are missing, ``ImageFile.LOAD_TRUNCATED_IMAGES`` flipped globally, and all four
models loaded at import).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Box:
    """A face's bounding box in pixel coordinates of the original image."""

    top: int
    right: int
    bottom: int
    left: int

    def as_list(self) -> list[int]:
        return [self.top, self.right, self.bottom, self.left]

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top


@dataclass(frozen=True)
class Face:
    box: Box
    embedding: np.ndarray  # float32, shape (engine.dim,)


class FaceEngine(Protocol):
    name: str
    dim: int

    def faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face found in an RGB uint8 image, with its embedding."""


# dlib's frontal HOG detector finds faces of at least about this many pixels.
HOG_WINDOW = 80
DETECTORS = ("hog", "blazeface")
# With the blazeface detector, HOG looks at a crop where the proposed face spans
# this many pixels: comfortably above its window, on a crop of about 220 px.
PROPOSAL_SIDE = 110


class ModelsMissing(RuntimeError):
    pass


def _models_dir() -> Path:
    # Located without importing face_recognition_models: its __init__ imports
    # pkg_resources, which setuptools >= 81 no longer provides.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(
            "the face models are not installed: pip install face_recognition_models"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibEngine:
    """dlib's HOG face detector and 128-d ResNet face descriptor.

    ``detect_max_side``: faces are searched on a copy whose longest side is at
    most this many pixels (upsampled once, so faces down to ~40 px of that copy
    are found); landmarks and descriptors are then computed on the full image.
    ``jitters``: how many re-sampled copies each descriptor averages (dlib's
    published 99.38 % on LFW uses 100; 1 is face_recognition's default).
    ``detector``: ``hog`` searches the whole image with HOG, as face_recognition
    does; ``blazeface`` asks BlazeFace (:mod:`matcher.proposals`) where faces
    may be and runs HOG only around those places, sized so the face spans
    about 110 px: the same faces and boxes, several times faster on large photos.
    """

    name = "dlib_resnet_v1"
    dim = 128

    def __init__(self, detect_max_side: int = 1600, upsample: int = 1, jitters: int = 1, min_face: int | None = None,
                 detector: str = "hog"):
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r} (one of: {', '.join(DETECTORS)})")
        self.detect_max_side = detect_max_side
        self.upsample = upsample
        self.jitters = jitters
        self.min_face = min_face
        self.detector = detector

    def detection_plan(self, height: int, width: int, scale: float = 1.0) -> tuple[int, int]:
        """(longest side of the detection copy, upsampling) for an image of this size.

        By default: at most ``detect_max_side``, upsampled once (face_recognition's
        CLI does the same). With ``min_face`` (the smallest face of interest, in
        pixels of the original, which is ``scale`` times this image): the copy is
        sized so that such a face spans the HOG detector's 80 px window without
        upsampling (about a third of the work of upsampling), or 40 px with it
        when the face is smaller than the window even at full size.
        """
        longest = max(height, width)
        if self.min_face is None or self.detector == "blazeface":
            # blazeface: proposals need little resolution, and HOG then runs on crops
            # zoomed to the face; ``min_face`` only sets which proposals are sought.
            return min(longest, self.detect_max_side), self.upsample
        ratio = HOG_WINDOW * scale / self.min_face  # detection pixels per image pixel
        if ratio <= 1:
            return max(HOG_WINDOW, round(longest * ratio)), 0
        return min(longest, round(longest * ratio / 2)), 1

    def smallest_face(self, height: int, width: int, scale: float = 1.0) -> float:
        """The smallest face searched for, in pixels of this image: ``min_face`` (given in the
        original's pixels), else what the default HOG search reaches (40 px of a 1600 px copy)."""
        if self.min_face is not None:
            return self.min_face / scale
        return HOG_WINDOW / 2 * max(1.0, max(height, width) / self.detect_max_side)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        """Face boxes in this image's coordinates (``scale``: original pixels per pixel of it)."""
        if self.detector == "blazeface":
            return self._detect_around_proposals(rgb, scale)
        _, detector, _, _ = _load_models()
        side, upsample = self.detection_plan(*rgb.shape[:2], scale=scale)
        small, scale = downscale(rgb, side)
        return [_box_from_rect(rect, scale, rgb.shape) for rect in detector(small, upsample)]

    def _detect_around_proposals(self, rgb: np.ndarray, scale: float) -> list[Box]:
        """HOG on a crop around each BlazeFace proposal, the proposal sized to PROPOSAL_SIDE px."""
        import cv2

        from matcher.proposals import propose

        _, detector, _, _ = _load_models()
        height, width = rgb.shape[:2]
        boxes: list[Box] = []
        for proposal in propose(rgb, self.smallest_face(height, width, scale)):
            side = proposal.side
            centre_x, centre_y = (proposal.left + proposal.right) / 2, (proposal.top + proposal.bottom) / 2
            top, left = max(0, int(centre_y - side)), max(0, int(centre_x - side))
            bottom, right = min(height, int(centre_y + side)), min(width, int(centre_x + side))
            if bottom - top < 2 or right - left < 2:
                continue
            zoom = PROPOSAL_SIDE / side
            crop = cv2.resize(rgb[top:bottom, left:right], None, fx=zoom, fy=zoom,
                              interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
            for rect in detector(crop, 0):
                box = _box_from_rect(rect, zoom, rgb.shape, top, left)
                if all(_overlap(box, other) < 0.5 for other in boxes):  # found again from a neighbouring proposal
                    boxes.append(box)
        return boxes

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """One embedding per box, shape (len(boxes), 128), float32."""
        dlib, _, landmarks, descriptor = _load_models()
        if not boxes:
            return np.empty((0, self.dim), np.float32)
        shapes = dlib.full_object_detections()
        for box in boxes:
            shapes.append(landmarks(rgb, dlib.rectangle(box.left, box.top, box.right, box.bottom)))
        vectors = descriptor.compute_face_descriptor(rgb, shapes, self.jitters)
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32)

    def faces(self, rgb: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        boxes = self.detect(rgb)
        return [Face(box, vector) for box, vector in zip(boxes, self.embed(rgb, boxes))]


@functools.cache
def _load_models():
    """dlib and its three models, loaded once per process on first use."""
    import dlib  # heavy native import: only when a face is first needed

    models = _models_dir()
    landmarks = models / "shape_predictor_5_face_landmarks.dat"
    descriptor = models / "dlib_face_recognition_resnet_model_v1.dat"
    for path in (landmarks, descriptor):
        if not path.is_file():
            raise ModelsMissing(f"face model file missing: {path}")
    return (
        dlib,
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(landmarks)),
        dlib.face_recognition_model_v1(str(descriptor)),
    )


def _box_from_rect(rect, zoom: float, shape: tuple, top: int = 0, left: int = 0) -> Box:
    """A dlib rectangle found on a copy ``zoom`` times the size of the image region at
    (``top``, ``left``), as a box in the image's coordinates, clipped to its ``shape``."""
    height, width = shape[:2]
    return Box(
        top=max(0, round(top + rect.top() / zoom)),
        right=min(width, round(left + rect.right() / zoom)),
        bottom=min(height, round(top + rect.bottom() / zoom)),
        left=max(0, round(left + rect.left() / zoom)),
    )


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = max(0, min(a.bottom, b.bottom) - max(a.top, b.top)) * max(0, min(a.right, b.right) - max(a.left, b.left))
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union else 0.0


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


_process_engines: dict[tuple, DlibEngine] = {}


def process_engine(detect_max_side: int = 1600, jitters: int = 1, min_face: int | None = None,
                   detector: str = "hog") -> DlibEngine:
    """The engine of this process for these settings, created on first use (once per worker)."""
    key = (detect_max_side, jitters, min_face, detector)
    if key not in _process_engines:
        _process_engines[key] = DlibEngine(detect_max_side=detect_max_side, jitters=jitters, min_face=min_face,
                                           detector=detector)
    return _process_engines[key]
