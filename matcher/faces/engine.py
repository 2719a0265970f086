"""An engine is a detector and an embedder; a spec says which, and workers build it once.

The scan ships an :class:`EngineSpec` to each worker with its first file, and
:func:`process_engine` builds the engine there once, so the models load once
per worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matcher.faces.base import Detector, Embedder, EngineSpec, Face, FaceEngine
from matcher.faces.blazeface import BlazeFaceHogDetector
from matcher.faces.dlib_resnet import DlibResnetEmbedder
from matcher.faces.hog import HogDetector
from matcher.faces.onnx_resnet import OnnxResnetEmbedder
from matcher.model import Box


class Engine:
    """A :class:`FaceEngine` made of one detector and one embedder."""

    def __init__(self, detector: Detector, embedder: Embedder):
        self.detector, self.embedder = detector, embedder
        self.name, self.dim = embedder.name, embedder.dim

    def decode_side(self, height: int, width: int) -> int:
        return self.detector.decode_side(height, width)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        return self.detector.detect(rgb, scale)

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        return self.embedder.embed(rgb, boxes)

    def faces(self, rgb: np.ndarray) -> list[Face]:
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        boxes = self.detect(rgb)
        return [Face(box, vector) for box, vector in zip(boxes, self.embed(rgb, boxes))]


def _hog(spec: "DlibSpec") -> Detector:
    return HogDetector(spec.detect_max_side, min_face=spec.min_face)


def _blazeface(spec: "DlibSpec") -> Detector:
    return BlazeFaceHogDetector(spec.detect_max_side, spec.min_face,
                                Path(spec.proposal_model) if spec.proposal_model else None, spec.device)


# The detectors a scan may use, by name: ``hog`` searches each whole image, as
# face_recognition does; ``blazeface`` runs HOG only where the BlazeFace network
# proposes a face. A new detector is one module and one entry here.
DETECTORS = {"hog": _hog, "blazeface": _blazeface}


def _torch(spec: "DlibSpec") -> Embedder:
    from matcher.faces.torch_resnet import TorchResnetEmbedder  # PyTorch only where asked for

    return TorchResnetEmbedder(spec.device)


# The runtimes of dlib's ResNet, by name: the same network and weights, the same
# embeddings (within 1e-3, tested): ``dlib`` itself (the reference, and the only
# one that jitters), ``onnx`` (our ONNX model in onnxruntime or OpenCV, ten times
# cheaper) and ``torch`` (a GPU).
RUNTIMES = {
    "dlib": lambda spec: DlibResnetEmbedder(spec.jitters),
    "onnx": lambda spec: OnnxResnetEmbedder(),
    "torch": _torch,
}


@dataclass(frozen=True)
class DlibSpec:
    """dlib's ResNet embeddings with one of :data:`DETECTORS`.

    ``detect_max_side``: faces are searched on a copy whose longest side is at
    most this; ``min_face``: the smallest face of interest, in pixels of the
    original (None: what face_recognition reaches); ``jitters``: re-sampled
    copies averaged per embedding (dlib's runtime only); ``proposal_model``:
    the BlazeFace model file (None: the one shipped); ``device``: ``cpu`` or
    ``cuda`` (PyTorch's).
    """

    detector: str = "hog"
    detect_max_side: int = 1600
    min_face: int | None = None
    jitters: int = 1
    proposal_model: str | None = None
    device: str = "cpu"

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"unknown detector {self.detector!r} (one of: {', '.join(DETECTORS)})")

    @property
    def runtime(self) -> str:
        """Which of :data:`RUNTIMES` runs the ResNet: only dlib's own re-samples (jitters), and
        another device than the CPU is PyTorch's."""
        if self.jitters > 1:
            return "dlib"
        return "torch" if self.device != "cpu" else "onnx"

    @property
    def name(self) -> str:
        return DlibResnetEmbedder.name

    def build(self) -> FaceEngine:
        return Engine(DETECTORS[self.detector](self), RUNTIMES[self.runtime](self))


_process_engines: dict[EngineSpec, FaceEngine] = {}


def process_engine(spec: EngineSpec = DlibSpec()) -> FaceEngine:
    """The engine of this process for ``spec``, built on first use (once per worker)."""
    if spec not in _process_engines:
        _process_engines[spec] = spec.build()
    return _process_engines[spec]
