"""Faces: find them in an image and turn each into an embedding, behind small interfaces.

See :mod:`matcher.faces.base` for the interfaces; one module per implementation.
"""

from matcher.faces.base import Detector, Embedder, EngineSpec, Face, FaceEngine, ModelsMissing
from matcher.faces.engine import DETECTORS, DlibSpec, Engine, process_engine

__all__ = ["DETECTORS", "Detector", "DlibSpec", "Embedder", "Engine", "EngineSpec", "Face", "FaceEngine",
           "ModelsMissing", "process_engine"]
