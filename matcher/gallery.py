"""Match faces against enrolled references: pure numpy, no I/O.

A face is compared with a person through that person's nearest reference
embedding. All distances of one image come from one matrix product, whatever
the number of enrolled people.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances, from one matrix product."""
    squared = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


@dataclass
class Gallery:
    """Reference embeddings of every enrolled person, grouped by person.

    ``embeddings`` rows are sorted so that each person's references are
    contiguous; ``starts[i]`` is the first row of ``person_ids[i]``.
    """

    embeddings: np.ndarray  # (M, d) float32
    person_ids: np.ndarray  # (P,) int64
    starts: np.ndarray  # (P,) int64

    @classmethod
    def build(cls, rows: list[tuple[int, np.ndarray]], dim: int = 128) -> "Gallery":
        """From ``(person_id, embedding)`` pairs in any order."""
        if not rows:
            return cls(np.empty((0, dim), np.float32), np.empty(0, np.int64), np.empty(0, np.int64))
        rows = sorted(rows, key=lambda row: row[0])
        ids = np.array([row[0] for row in rows], dtype=np.int64)
        embeddings = np.stack([row[1] for row in rows]).astype(np.float32)
        person_ids, starts = np.unique(ids, return_index=True)
        return cls(embeddings, person_ids, starts)

    def __len__(self) -> int:
        return len(self.person_ids)

    def of_person(self, person_id: int) -> "Gallery":
        """The gallery of one person's references (empty when they have none)."""
        return self.of_people([person_id])

    def of_people(self, person_ids) -> "Gallery":
        """The gallery of these people's references (those without any are left out)."""
        kept = np.flatnonzero(np.isin(self.person_ids, np.asarray(list(person_ids), np.int64)))
        ends = np.append(self.starts[1:], len(self.embeddings))
        rows = [np.arange(self.starts[index], ends[index]) for index in kept]
        sizes = np.array([len(r) for r in rows], np.int64)
        return Gallery(self.embeddings[np.concatenate(rows)] if rows else self.embeddings[:0], self.person_ids[kept],
                       np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64) if rows else self.starts[:0])

    def distances(self, faces: np.ndarray) -> np.ndarray:
        """(k, P) Euclidean distance from each face to each person's nearest reference."""
        faces = np.asarray(faces, dtype=np.float32).reshape(-1, self.embeddings.shape[1])
        if len(self) == 0 or len(faces) == 0:
            return np.empty((len(faces), len(self)), np.float32)
        return np.minimum.reduceat(pairwise_distances(faces, self.embeddings), self.starts, axis=1)


@dataclass(frozen=True)
class Assignment:
    face: int  # row of the face in the image
    person_id: int | None
    distance: float | None  # to the assigned person, or to the nearest person if none


def assign(distances: np.ndarray, person_ids: np.ndarray, limit) -> list[Assignment]:
    """Give each face of one image at most its closest person within ``limit`` (a number, or one per
    face and person, broadcast against ``distances``).

    Greedy on ascending distance, so the closest (face, person) pair wins and
    one person is never given to two faces of the same image.
    """
    faces, people = distances.shape
    nearest = distances.min(axis=1) if people else np.full(faces, np.nan)
    chosen: dict[int, tuple[int, float]] = {}
    if people:
        rows, cols = np.nonzero(distances <= limit)
        order = np.argsort(distances[rows, cols], kind="stable")
        taken: set[int] = set()
        for row, col in zip(rows[order], cols[order]):
            if row in chosen or col in taken:
                continue
            chosen[int(row)] = (int(person_ids[col]), float(distances[row, col]))
            taken.add(int(col))
    result = []
    for face in range(faces):
        if face in chosen:
            person_id, distance = chosen[face]
            result.append(Assignment(face, person_id, distance))
        else:
            distance = None if np.isnan(nearest[face]) else float(nearest[face])
            result.append(Assignment(face, None, distance))
    return result


@dataclass
class RuledOut:
    """The faces reviewers ruled are not the person they matched ("not them"), by person: the
    look-alikes a reviewer has seen. Each vouches only within its own limit (a face seen less
    clearly is a less sure same-person test), and only faces a reviewer saw count: a face
    cleared as a look-alike is never evidence in turn."""

    by_person: dict[int, tuple[np.ndarray, np.ndarray]]  # person id -> ((N, d) embeddings, (N,) limits)

    @classmethod
    def build(cls, ruled: list[tuple[int, np.ndarray, float]]) -> "RuledOut":
        """From ``(person id, embedding, limit)`` of each ruled face (limit 0: never evidence)."""
        grouped: dict[int, list[tuple[np.ndarray, float]]] = {}
        for person_id, embedding, limit in ruled:
            if limit > 0:
                grouped.setdefault(person_id, []).append((embedding, limit))
        return cls({person_id: (np.stack([vector for vector, _ in faces]).astype(np.float32),
                                np.array([limit for _, limit in faces], dtype=np.float32))
                    for person_id, faces in grouped.items()})

    def __contains__(self, person_id: int) -> bool:
        return person_id in self.by_person

    def nearest(self, person_id: int, embeddings: np.ndarray) -> list[float | None]:
        """For each of ``embeddings``, the distance to the nearest face ruled not ``person_id``
        among those whose limit it is within (None: none)."""
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(embeddings), -1)
        if person_id not in self.by_person or not len(embeddings):
            return [None] * len(embeddings)
        ruled, limits = self.by_person[person_id]
        distances = pairwise_distances(embeddings, ruled)
        distances[distances > limits[None, :]] = np.inf
        nearest = distances.min(axis=1)
        return [None if np.isinf(value) else float(value) for value in nearest]
