"""Reference photos: turn a person's photos into reference embeddings, refusing unusable ones.

Only embeddings and the photos' hashes are kept, never the photos.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from matcher.faces import FaceEngine
from matcher.faces.quality import covered, sharpness
from matcher.media import DEFAULT_MAX_PIXELS, MediaError, decode_image, sniff
from matcher.model import Box, Reference


# The enrollment quality gate, measured by bench/quality_gate.py on the 164
# single-face photos of ../shared/faces (lfw10, bbt crops, face_recognition's examples):
# - sharpness (below) of real photos: min 12.6, 5th percentile 29, median 96;
#   15 refuses 1 of the 164. Gaussian blur of sigma 1.5 / 2 / 3 brings the lfw10
#   and bbt faces (~100 px) to a median of 12.3 / 7.7 / 4.6 (73 / 95 / 99 % refused)
#   and moves their embeddings by 0.21 / 0.29 / 0.42 (a third to two thirds of
#   the match threshold). A sharper, 89 px face (the demo's reference, 247)
#   still passes at sigma 1.5 and 2 (26.7, 18.1) and is refused at 3 (11.0).
# - a face narrower than 80 px is upsampled into dlib's 150 px chip: faces of
#   60-90 px moved 0.08-0.15 against the same face at full resolution, 100 px
#   and more 0.045-0.075.
MIN_FACE_WIDTH = 80
MIN_SHARPNESS = 15.0


class EnrollError(ValueError):
    """Reference photos that cannot be used; ``problems`` holds one line per photo."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class ReferencePhoto:
    path: str  # where the photo came from (a file name), for messages
    sha256: str
    embedding: np.ndarray
    box: Box | None = None

    def reference(self) -> Reference:
        """What is stored of it: its hash and embedding, never the photo."""
        return Reference(self.sha256, self.embedding)


def read_references(paths: list[str], engine: FaceEngine) -> list[ReferencePhoto]:
    """One embedding per photo file; every photo must show exactly one face.

    All photos are checked before any is refused, so one run names every problem.
    """
    references, problems = [], []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            references.append(reference_from_bytes(path, data, engine)[0])
        except OSError as exc:
            problems.append(f"{path}: cannot read the file: {exc.strerror or exc}")
        except EnrollError as exc:
            problems += exc.problems
    if problems:
        raise EnrollError(problems)
    return references


def reference_from_bytes(label: str, data: bytes, engine: FaceEngine,
                         max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ReferencePhoto, np.ndarray]:
    """The reference in one encoded photo, and the upright photo it was found in (for a preview).

    Raises :class:`EnrollError` naming ``label`` and the reason when the photo cannot be used.
    """
    def refuse(reason: str) -> EnrollError:
        return EnrollError([f"{label}: {reason}"])

    if not data:
        raise refuse("empty file (0 bytes)")
    detected = sniff(data[:64])
    if detected is None or detected[0] != "image":
        raise refuse("not an image (reference photos must be JPEG, PNG, HEIC, GIF, BMP, TIFF or WebP)")
    try:
        rgb = decode_image(data, max_pixels)
        faces = engine.faces(rgb)
    except MediaError as exc:
        raise refuse(str(exc)) from None
    if not faces:
        raise refuse("no face found; use a clear, frontal photo of the person")
    if len(faces) > 1:
        raise refuse(f"{len(faces)} faces found; a reference photo must show only this person (crop it)")
    if quality := quality_problem(rgb, faces[0].box):
        raise refuse(quality)
    return ReferencePhoto(label, hashlib.sha256(data).hexdigest(), faces[0].embedding, faces[0].box), rgb


def quality_problem(rgb: np.ndarray, box: Box) -> str | None:
    """Why a reference face is not good enough for a reliable embedding, or None."""
    if box.width < MIN_FACE_WIDTH:
        return (f"the face is too small ({box.width} px wide, needs at least {MIN_FACE_WIDTH}); "
                "use a closer or larger photo")
    score = sharpness(rgb, box)
    if score < MIN_SHARPNESS:
        return f"the face is too blurred (sharpness {score:.1f}, needs at least {MIN_SHARPNESS:g}); use a sharper photo"
    # A covered reference would draw strangers' covered faces: two covered faces look alike by their
    # covers (bench/covered_and_mirror.py: stranger pairs within 0.55 rose from 11 to 825 of 8,640).
    if not box.frontal or covered(rgb, box):
        return "the face is not seen whole (nose and mouth covered, or the head turned); use a clear, frontal photo"
    return None


def check_same_person(new: list[ReferencePhoto], existing: list[np.ndarray], limit: float) -> None:
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
