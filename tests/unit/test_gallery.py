"""Matching: one matrix operation per image, nearest reference per person, one person per face."""

import numpy as np
import pytest

from matcher.gallery import Gallery, RuledOut, assign


def test_distances_are_to_each_persons_nearest_reference():
    rng = np.random.default_rng(1)
    refs = rng.normal(size=(7, 128)).astype(np.float32)
    owners = [5, 2, 5, 9, 2, 9, 9]
    gallery = Gallery.build(list(zip(owners, refs)))
    faces = rng.normal(size=(3, 128)).astype(np.float32)
    got = gallery.distances(faces)
    assert list(gallery.person_ids) == [2, 5, 9]
    for i, face in enumerate(faces):
        for j, person in enumerate(gallery.person_ids):
            want = min(np.linalg.norm(face - r) for r, o in zip(refs, owners) if o == person)
            assert abs(got[i, j] - want) < 1e-4


def test_one_person_is_not_given_to_two_faces_of_an_image():
    distances = np.array([[0.30, 0.50], [0.20, 0.55], [0.9, 0.9]], dtype=np.float32)
    result = assign(distances, np.array([10, 20]), limit=0.6)
    assert [(a.person_id, round(a.distance, 2)) for a in result] == [(20, 0.5), (10, 0.2), (None, 0.9)]


def test_empty_gallery_matches_nobody():
    gallery = Gallery.build([])
    distances = gallery.distances(np.zeros((2, 128), np.float32))
    assert distances.shape == (2, 0)
    assert [a.person_id for a in assign(distances, gallery.person_ids, 0.6)] == [None, None]


def test_a_gallery_of_some_people_gives_their_columns_of_the_whole():
    rng = np.random.default_rng(0)
    whole = Gallery.build([(p, rng.normal(size=128).astype(np.float32)) for p in (3, 1, 1, 2, 3, 3, 5)])
    faces = rng.normal(size=(10, 128))
    everyone = whole.distances(faces)  # columns: people 1, 2, 3, 5
    for asked, columns in (([1], [0]), ([3], [2]), ([2, 5], [1, 3]), ([5, 1, 3], [0, 2, 3]), ([3, 9], [2])):
        some = whole.of_people(asked)
        assert some.person_ids.tolist() == [[1, 2, 3, 5][c] for c in columns]
        np.testing.assert_allclose(some.distances(faces), everyone[:, columns], rtol=1e-6)
    assert len(whole.of_people([9])) == 0 and whole.of_people([9]).distances(faces).shape == (10, 0)


def test_a_ruled_out_face_vouches_within_its_own_limit_and_for_its_own_person():
    ruled = np.zeros(4, np.float32)
    step = np.array([0.1, 0, 0, 0], np.float32)
    faces = RuledOut.build([(1, ruled, 0.5), (1, 10 * step, 0.3), (3, ruled, 0.0)])
    assert 1 in faces and 2 not in faces and 3 not in faces  # limit 0: a face seen too poorly vouches for nothing
    assert faces.nearest(1, np.stack([4 * step, 8 * step, 6 * step])) == [
        pytest.approx(0.4, abs=1e-3), pytest.approx(0.2, abs=1e-3), None]  # 0.6 and 0.4: beyond each limit
    assert faces.nearest(2, np.stack([ruled])) == [None]
