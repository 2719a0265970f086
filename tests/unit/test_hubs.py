"""Per-person thresholds against hubs (matcher.hubs): tails measured beyond review, only ever tightened."""

import math

import numpy as np

from helpers import near, unit
from matcher import hubs
from matcher.gallery import Gallery


def background_around(reference, distances, seed=0):
    return np.stack([near(reference, d, seed=seed + i) for i, d in enumerate(distances)])


def test_a_persons_tail_is_measured_beyond_their_review_limit():
    ref = unit(1)
    beyond = np.linspace(0.63, 0.93, 400)
    # 50 faces of the person themselves (not yet matched to them) must not make them look like a hub.
    own_photos = [0.3] * 50
    background = background_around(ref, [*beyond, *own_photos])
    gallery = Gallery.build([(7, ref)])
    [tail] = hubs.impostor_tails(gallery, background, review=0.62)
    assert math.isclose(tail, float(np.quantile(beyond, hubs.TAIL_QUANTILE)), abs_tol=1e-4)


def test_too_few_background_faces_measure_no_one():
    ref = unit(1)
    gallery = Gallery.build([(7, ref)])
    few = background_around(ref, np.linspace(0.63, 0.93, hubs.MIN_BACKGROUND - 1))
    assert np.isnan(hubs.impostor_tails(gallery, few, review=0.62)).all()
    # Enough faces in all, but most within review of the person: still too few beyond it.
    mixed = background_around(ref, [*np.linspace(0.63, 0.93, hubs.MIN_BACKGROUND - 1), *[0.4] * 300])
    assert np.isnan(hubs.impostor_tails(gallery, mixed, review=0.62)).all()


def test_tails_are_the_same_whatever_the_block_of_people(monkeypatch):
    people = [(pid, unit(pid)) for pid in range(1, 12)] + [(5, unit(100))]  # person 5: two references
    centre = unit(1)
    background = background_around(centre, np.linspace(0.63, 1.2, 500))
    gallery = Gallery.build(people)
    whole = hubs.impostor_tails(gallery, background, review=0.62)
    monkeypatch.setattr(hubs, "PEOPLE_PER_BLOCK", 3)
    assert np.allclose(hubs.impostor_tails(gallery, background, review=0.62), whole, equal_nan=True)
    assert whole[0] < np.nanmedian(whole)  # person 1 sits in the middle of the background: a hub


def test_only_people_whose_tail_lies_closer_than_the_typical_are_tightened():
    ids = np.arange(1, 7)
    tails = np.array([0.70, 0.71, 0.69, 0.64, 0.50, np.nan])
    own = {o.person_id: o for o in hubs.own_thresholds(ids, tails, match=0.55, review=0.62)}
    assert hubs.typical_tail(tails) == 0.69  # the median of those measured
    for typical in (1, 2, 3):  # at or within TOLERANCE of the typical tail
        assert (own[typical].match, own[typical].review) == (None, None)
    assert (own[4].match, own[4].review) == (0.50, 0.57)  # 0.05 closer: moved in by 0.05
    assert (own[5].match, own[5].review) == (0.47, 0.54)  # 0.19 closer: moved in by MAX_SHIFT (0.08) only
    assert (own[6].tail, own[6].match) == (None, None)  # not measured: the rules' thresholds
    # Against a typical tail given (a newly enrolled person, measured alone).
    [alone] = hubs.own_thresholds(np.array([9]), np.array([0.66]), 0.55, 0.62, typical=0.70)
    assert (alone.match, alone.review) == (0.51, 0.58)
    assert hubs.typical_tail(np.array([np.nan])) is None
