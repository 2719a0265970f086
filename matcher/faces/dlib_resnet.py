"""dlib's 128-d ResNet face descriptor run by dlib itself: the reference runtime.

The same computation as face_recognition's ``face_encodings`` (a test checks
equality) on upright faces that are not dark and grainy (those are embedded from the
chips every runtime embeds: turned upright, smoothed), but the models load lazily,
once per process, without the side effects of ``import face_recognition``
(``quit()`` when models are missing, ``ImageFile.LOAD_TRUNCATED_IMAGES`` flipped
globally, all models loaded at import). Scans use :mod:`matcher.faces.onnx_resnet`, the same network ten
times cheaper; this one stays as the reference, and for ``--jitter``.
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.landmarks import face_chips
from matcher.faces.resnet_weights import EMBEDDING_SIZE
from matcher.model import Box


@functools.cache
def _descriptor():
    path = dlib_model("dlib_face_recognition_resnet_model_v1.dat")
    import dlib  # heavy native import: only when a face is first needed

    return dlib.face_recognition_model_v1(str(path))


class DlibResnetEmbedder:
    """``jitters``: how many re-sampled copies each descriptor averages (dlib's
    published 99.38 % on LFW uses 100; 1 is face_recognition's default)."""

    name = "dlib_resnet_v1"
    dim = EMBEDDING_SIZE

    def __init__(self, jitters: int = 1):
        self.jitters = jitters

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        if not boxes:
            return np.empty((0, self.dim), np.float32)
        # The chips every runtime embeds (tilted faces turned upright, grainy ones smoothed): for
        # any other face the same chips dlib cuts itself from the image and landmarks.
        chips = [np.ascontiguousarray(chip) for chip in face_chips(rgb, boxes)]
        vectors = _descriptor().compute_face_descriptor(chips, self.jitters)
        return np.array([np.asarray(v) for v in vectors], dtype=np.float32)
