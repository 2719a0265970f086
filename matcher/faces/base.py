"""The interfaces every face model sits behind.

A :class:`Detector` finds face boxes in an RGB image; an :class:`Embedder`
turns each box into a vector; a :class:`FaceEngine` is the pair the scan and
enrollment use. An engine is made in each worker process from an
:class:`EngineSpec` (small, picklable, hashable), so a new detector or
embedding model plugs in by providing a spec, without touching the scan, the
store or the command line — the way python-threatexchange puts its signal
types behind one interface. Embeddings of different engines are never
compared: the store records the engine's ``name`` with each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from matcher.model import Box


class ModelsMissing(RuntimeError):
    """A model file is not installed: no input is to blame, the run stops with this message."""


@dataclass(frozen=True)
class Face:
    box: Box
    embedding: np.ndarray  # float32, shape (engine.dim,)


class Detector(Protocol):
    def decode_side(self, height: int, width: int) -> int:
        """The longest side the image needs for detection: a larger JPEG may be decoded at reduced size."""

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        """Face boxes in this image's coordinates (``scale``: original pixels per pixel of ``rgb``)."""


class Embedder(Protocol):
    name: str  # the embedding space: vectors of different names are never compared
    dim: int

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        """One embedding per box, shape (len(boxes), dim), float32."""


class FaceEngine(Detector, Embedder, Protocol):
    def faces(self, rgb: np.ndarray) -> list[Face]:
        """Every face found in an RGB uint8 image, with its embedding."""


class EngineSpec(Protocol):
    """What a worker needs to make the engine: picklable and hashable (engines are cached by it)."""

    @property
    def name(self) -> str:
        """The name of the embeddings the engine makes, known without loading any model."""

    def build(self) -> FaceEngine:
        """The engine; models load lazily, on first use."""
