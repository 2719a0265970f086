"""Enrollment: turn a person's reference photos into embeddings, refusing unusable ones.

Only embeddings and the photos' hashes are kept, never the photos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from matcher.engine import FaceEngine
from matcher.media import MediaError, decode_image, sniff


class EnrollError(ValueError):
    """Reference photos that cannot be used; ``problems`` holds one line per photo."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class Reference:
    path: str
    sha256: str
    embedding: np.ndarray


def read_references(paths: list[str], engine: FaceEngine) -> list[Reference]:
    """One embedding per photo; every photo must show exactly one face.

    All photos are checked before any is refused, so one run names every problem.
    """
    references, problems = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            problems.append(f"{path}: cannot read the file: {exc.strerror or exc}")
            continue
        detected = sniff(data[:64])
        if not data:
            problems.append(f"{path}: empty file (0 bytes)")
            continue
        if detected is None or detected[0] != "image":
            problems.append(f"{path}: not an image (reference photos must be JPEG, PNG, GIF, BMP, TIFF or WebP)")
            continue
        try:
            faces = engine.faces(decode_image(data))
        except MediaError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if not faces:
            problems.append(f"{path}: no face found; use a clear, frontal photo of the person")
        elif len(faces) > 1:
            problems.append(
                f"{path}: {len(faces)} faces found; a reference photo must show only this person (crop it)"
            )
        else:
            references.append(Reference(path, hashlib.sha256(data).hexdigest(), faces[0].embedding))
    if problems:
        raise EnrollError(problems)
    return references


def check_same_person(new: list[Reference], existing: list[np.ndarray], limit: float) -> None:
    """Refuse new references that clearly do not show the same person as the others.

    A reference is an outlier when even its nearest other reference is
    farther than ``limit`` (a photo that matches none of the others).
    Existing references are trusted: only new ones are named. Two new photos
    that disagree, with nothing else to compare, are both named.
    """
    vectors = [*existing, *(ref.embedding for ref in new)]
    if len(vectors) < 2:
        return
    matrix = np.stack(vectors).astype(np.float64)
    distances = np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    problems = []
    for index, ref in enumerate(new, start=len(existing)):
        nearest = distances[index].min()
        if nearest > limit:
            problems.append(
                f"{ref.path}: does not look like the same person as the other references "
                f"(nearest distance {nearest:.3f}, more than {limit})"
            )
    if problems:
        raise EnrollError(problems)
