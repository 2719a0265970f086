"""Where dlib's model files are: the ``face_recognition_models`` package (public domain)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from matcher.faces.base import ModelsMissing


def dlib_model(name: str) -> Path:
    """The path of one of dlib's model files, checked to exist."""
    # Located without importing face_recognition_models: its __init__ imports
    # pkg_resources, which setuptools >= 81 no longer provides.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing("the face models are not installed: pip install face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise ModelsMissing(f"face model file missing: {path}")
    return path
