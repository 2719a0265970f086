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


def test_ruled_out_faces_are_compared_in_other_media_only_and_join_one_step():
    ruled = np.zeros(4, np.float32)
    step = np.array([0.4, 0, 0, 0], np.float32)

    def look_alike(distance, nearest):
        return nearest is not None and nearest <= 0.5 and nearest < distance

    faces = RuledOut.build([(1, "a", ruled)],
                           [(1, "b", step, 0.6), (1, "c", 2 * step, 0.6), (1, "d", step, 0.3), (2, "e", step, 0.6)],
                           look_alike)
    assert 1 in faces and 2 not in faces  # nobody ruled a face not person 2
    assert faces.nearest(1, "a", ruled) == pytest.approx(0.4, abs=1e-3)  # not its own media: b, which joined (0.4 from it)
    assert faces.nearest(1, "x", 2.5 * step) == pytest.approx(0.6, abs=1e-3)  # c (0.8 from the ruled face) never joined: one step only
    assert faces.nearest(1, "x", 0.5 * step) == pytest.approx(0.2, abs=1e-3)  # nor d, nearer the person than the ruled face
    assert faces.nearest(2, "x", ruled) is None
    only_ruled = RuledOut.build([(1, "a", ruled)])
    assert only_ruled.nearest(1, "a", ruled) is None
