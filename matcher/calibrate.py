"""Measure distance thresholds on labelled pairs (LFW ``pairs.txt`` format).

The figures behind the shipped thresholds come from here; see the README.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from matcher.engine import FaceEngine
from matcher.media import decode_image


@dataclass
class Pair:
    first: str
    second: str
    same: bool


def read_pairs(pairs_path: str) -> list[Pair]:
    """Pairs of image paths from an LFW ``pairs.txt`` beside ``<Name>/<Name>_NNNN.jpg`` folders."""
    root = os.path.dirname(os.path.abspath(pairs_path))

    def image(name: str, number: str) -> str:
        return os.path.join(root, name, f"{name}_{int(number):04d}.jpg")

    pairs = []
    with open(pairs_path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines[1:], start=2):  # first line: folds, pairs per fold
        fields = line.split()
        if len(fields) == 3:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True))
        elif len(fields) == 4:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False))
        elif fields:
            raise ValueError(f"{pairs_path}:{number}: expected 3 or 4 fields, found {len(fields)}")
    return pairs


def pair_distances(pairs: list[Pair], engine: FaceEngine) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same) for the pairs whose both images have a face (the largest, if several)."""
    cache: dict[str, np.ndarray | None] = {}

    def embedding(path: str) -> np.ndarray | None:
        if path not in cache:
            with open(path, "rb") as handle:
                faces = engine.faces(decode_image(handle.read()))
            cache[path] = max(faces, key=lambda f: f.box.width * f.box.height).embedding if faces else None
        return cache[path]

    distances, same = [], []
    for pair in pairs:
        a, b = embedding(pair.first), embedding(pair.second)
        if a is not None and b is not None:
            distances.append(float(np.linalg.norm(a - b)))
            same.append(pair.same)
    return np.array(distances), np.array(same, dtype=bool)


def rates(distances: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    """True-accept and false-accept rates when a pair at or below ``threshold`` is called the same person."""
    accepted = distances <= threshold
    return {
        "threshold": threshold,
        "true_accept_rate": float(accepted[same].mean()) if same.any() else float("nan"),
        "false_accept_rate": float(accepted[~same].mean()) if (~same).any() else float("nan"),
        "accuracy": float((accepted == same).mean()),
    }


def strictest_safe_threshold(distances: np.ndarray, same: np.ndarray, max_false_accept: float = 0.0) -> float:
    """The largest threshold whose false-accept rate is at most ``max_false_accept``:
    just below the smallest different-person distance when no false accept is allowed."""
    different = np.sort(distances[~same])
    allowed = int(np.floor(max_false_accept * len(different)))
    return float(np.nextafter(different[allowed], 0)) if len(different) > allowed else float("inf")


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """LFW-style accuracy: threshold chosen on nine folds, tested on the tenth. (mean, std)"""
    order = np.arange(len(distances))
    parts = np.array_split(order, folds)
    candidates = np.unique(distances)
    scores = []
    for index, test in enumerate(parts):
        train = np.concatenate([p for i, p in enumerate(parts) if i != index])
        best = max(candidates, key=lambda t: ((distances[train] <= t) == same[train]).mean())
        scores.append(((distances[test] <= best) == same[test]).mean())
    return float(np.mean(scores)), float(np.std(scores))
