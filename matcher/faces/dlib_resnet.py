"""dlib's 128-d ResNet face descriptor, with its 5-point landmarks (the models of face_recognition).

The same computation as face_recognition's ``face_encodings`` (a test checks
equality), but the models load lazily, once per process, without the side
effects of ``import face_recognition`` (``quit()`` when models are missing,
``ImageFile.LOAD_TRUNCATED_IMAGES`` flipped globally, all models loaded at import).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.model import Box


@functools.cache
def _models():
    """dlib, its 5-point landmark predictor and its face descriptor, loaded once per process."""
    landmarks = dlib_model("shape_predictor_5_face_landmarks.dat")
    descriptor = dlib_model("dlib_face_recognition_resnet_model_v1.dat")
    import dlib  # heavy native import: only when a face is first needed

    return dlib, dlib.shape_predictor(str(landmarks)), dlib.face_recognition_model_v1(str(descriptor))


class DlibResnetEmbedder:
    """``jitters``: how many re-sampled copies each descriptor averages (dlib's
    published 99.38 % on LFW uses 100; 1 is face_recognition's default)."""

    name = "dlib_resnet_v1"
    dim = 128

    def __init__(self, jitters: int = 1):
        self.jitters = jitters

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        if not boxes:
            return np.empty((0, self.dim), np.float32)
        dlib, landmarks, descriptor = _models()
        shapes = dlib.full_object_detections()
        for box in boxes:
            shapes.append(landmarks(rgb, dlib.rectangle(box.left, box.top, box.right, box.bottom)))
        vectors = descriptor.compute_face_descriptor(rgb, shapes, self.jitters)
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32)
