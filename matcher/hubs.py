"""Per-person thresholds against hubs: pure numpy, no I/O.

Some people's references sit near many other faces ("hubs"): at the same
thresholds they draw far more strangers than the others (issue 13 measured two
of six enrolled people drawing 95 % of the wrong matches in crowd shots). Each
person's impostor distances are measured against a background of faces that
are not them (in use: stored faces that matched no one); where the low tail
of a person's distances lies closer than the typical person's, their thresholds
are moved in by the difference, so that each person draws strangers at about
the typical rate. Thresholds are only ever tightened: a tighter match sends a
face to review, a tighter review lets a stranger go.

The background holds, by construction, only faces beyond every person's review
limit when they were matched; a newly enrolled person's own photos among them
(not yet matched to them) are left out the same way, by ignoring distances
within the person's review limit, so every person's tail is measured alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from matcher.gallery import Gallery

TAIL_QUANTILE = 0.02  # the low tail of a person's background distances that is compared
MIN_BACKGROUND = 200  # fewer faces than this beyond review: no tail can be measured
TOLERANCE = 0.01  # a tail this close to the typical one is typical (thresholds move in steps of this)
MAX_SHIFT = 0.08  # never move a person's thresholds in by more (a bad background must not blind the scan)
PEOPLE_PER_BLOCK = 2048  # people compared with the background at once (bounds memory: faces x block)


@dataclass(frozen=True)
class OwnThresholds:
    person_id: int
    tail: float | None  # the person's TAIL_QUANTILE background distance (None: too few faces)
    match: float | None  # None: the rules' own
    review: float | None


def impostor_tails(gallery: Gallery, background: np.ndarray, review: float) -> np.ndarray:
    """Each gallery person's TAIL_QUANTILE distance to the background (NaN where fewer than
    MIN_BACKGROUND background faces lie beyond ``review`` of them), in the gallery's order."""
    tails = np.full(len(gallery), np.nan)
    if len(background) < MIN_BACKGROUND:
        return tails
    for first in range(0, len(gallery), PEOPLE_PER_BLOCK):
        people = _people(gallery, first, first + PEOPLE_PER_BLOCK)
        for column, distances in enumerate(people.distances(background).T):
            beyond = distances[distances > review]
            if len(beyond) >= MIN_BACKGROUND:
                tails[first + column] = float(np.quantile(beyond, TAIL_QUANTILE))
    return tails


def typical_tail(tails: np.ndarray) -> float | None:
    """The median person's tail (None: no one measured)."""
    measured = tails[~np.isnan(tails)]
    return round(float(np.median(measured)), 4) if len(measured) else None


def own_thresholds(person_ids: np.ndarray, tails: np.ndarray, match: float, review: float,
                   typical: float | None = None) -> list[OwnThresholds]:
    """Each person's thresholds: the rules' ``match`` and ``review`` moved in by how much closer their
    tail lies than the ``typical`` one (the median of ``tails`` when not given), at most MAX_SHIFT;
    None where it lies no closer."""
    typical = typical_tail(tails) if typical is None else typical
    out = []
    for person_id, tail in zip(person_ids.tolist(), tails.tolist()):
        tail = None if np.isnan(tail) else round(tail, 4)
        if typical is None or tail is None or typical - tail <= TOLERANCE:
            out.append(OwnThresholds(person_id, tail, None, None))
            continue
        # In steps of 0.01: the tail moves a little with every scan; thresholds should not.
        shift = round(min(MAX_SHIFT, typical - tail), 2)
        out.append(OwnThresholds(person_id, tail, round(match - shift, 4), round(review - shift, 4)))
    return out


def _people(gallery: Gallery, first: int, end: int) -> Gallery:
    """The gallery of persons ``first`` to ``end`` (in its order)."""
    end = min(end, len(gallery))
    rows_end = gallery.starts[end] if end < len(gallery) else len(gallery.embeddings)
    rows_first = gallery.starts[first]
    return Gallery(gallery.embeddings[rows_first:rows_end], gallery.person_ids[first:end],
                   gallery.starts[first:end] - rows_first)
