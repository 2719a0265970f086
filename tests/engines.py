"""Test-only face engines: plug-ins behind the same interface as the real ones.

- :class:`SquareSpec` builds an engine whose "faces" are textured coloured
  squares on a grey background, embedded by their colour: a new detector and
  embedding model, plugged into the real scan, store and services without
  touching them.
- :class:`KillOnceSpec` and :class:`KillOnSpec` wrap a real engine and SIGKILL
  the worker process running them (once, or on every try for one file), to
  test what a scan does when its workers die.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

import numpy as np

from matcher.faces import DlibSpec, Face, FaceEngine
from matcher.model import Box

GREY = 128


def square_photo(colours: list[tuple[int, int, int]], size=(480, 360), side=120, seed=0) -> np.ndarray:
    """A grey picture with one textured square of each colour, side by side (the test engine's "faces")."""
    rng = np.random.default_rng(seed)
    width, height = size
    rgb = np.full((height, width, 3), GREY, np.uint8)
    for index, colour in enumerate(colours):
        left, top = 20 + index * (side + 30), (height - side) // 2
        texture = rng.integers(-40, 41, (side, side, 3))
        rgb[top:top + side, left:left + side] = np.clip(np.array(colour) + texture, 0, 255)
    return rgb


class SquareEngine:
    name = "test_squares_v1"
    dim = 128

    def decode_side(self, height: int, width: int) -> int:
        return max(height, width)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        import cv2

        mask = (np.abs(rgb.astype(np.int16) - GREY).sum(axis=2) > 60).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        return [Box(int(y), int(x + w), int(y + h), int(x)) for x, y, w, h, area in stats[1:count] if area >= 256]

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        vectors = []
        for box in boxes:
            colour = np.median(rgb[box.top:box.bottom, box.left:box.right].reshape(-1, 3), axis=0)
            # The same colour (to within a 32nd) gives the same vector; another colour, one about sqrt(2) away.
            vector = np.random.default_rng(tuple((colour // 32).astype(int).tolist())).normal(size=self.dim)
            vectors.append(vector / np.linalg.norm(vector))
        return np.array(vectors, np.float32).reshape(len(boxes), self.dim)

    def faces(self, rgb: np.ndarray) -> list[Face]:
        boxes = self.detect(rgb)
        return [Face(box, vector) for box, vector in zip(boxes, self.embed(rgb, boxes))]


@dataclass(frozen=True)
class SquareSpec:
    @property
    def name(self) -> str:
        return SquareEngine.name

    def build(self) -> FaceEngine:
        return SquareEngine()


class _Killing:
    """A real engine that SIGKILLs its own process when ``should_die(rgb)`` says so, before detecting."""

    def __init__(self, engine: FaceEngine, should_die):
        self.engine, self.should_die = engine, should_die
        self.name, self.dim = engine.name, engine.dim

    def decode_side(self, height, width):
        return self.engine.decode_side(height, width)

    def detect(self, rgb, scale=1.0):
        if self.should_die(rgb):
            os.kill(os.getpid(), signal.SIGKILL)
        return self.engine.detect(rgb, scale)

    def embed(self, rgb, boxes):
        return self.engine.embed(rgb, boxes)

    def faces(self, rgb):
        return self.engine.faces(rgb)


@dataclass(frozen=True)
class KillOnceSpec:
    """Dies on the first image any worker sees (``marker`` records that it happened), then works."""

    marker: str
    real: DlibSpec = field(default_factory=lambda: DlibSpec(detector="blazeface"))

    @property
    def name(self) -> str:
        return self.real.name

    def build(self) -> FaceEngine:
        def first_time(rgb) -> bool:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return False
            return True

        return _Killing(self.real.build(), first_time)


@dataclass(frozen=True)
class KillOnSpec:
    """Dies whenever it sees an image ``width`` pixels wide: the worker running it dies on every try."""

    width: int
    real: DlibSpec = field(default_factory=lambda: DlibSpec(detector="blazeface"))

    @property
    def name(self) -> str:
        return self.real.name

    def build(self) -> FaceEngine:
        return _Killing(self.real.build(), lambda rgb: rgb.shape[1] == self.width)
