"""Calibration arithmetic on known distances (no face model needed)."""

import numpy as np
import pytest

from matcher.calibrate import (
    CalibrationError,
    calibrate,
    equal_error_rate,
    folder_pairs,
    read_pairs,
    threshold_at_far,
    ten_fold_accuracy,
)


def test_threshold_at_far_counts_the_allowed_false_accepts():
    distances = np.array([0.3, 0.4, 0.5, 0.61, 0.62, 0.63, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2])
    same = np.array([True] * 3 + [False] * 9)
    assert threshold_at_far(distances, same, 0.0) == pytest.approx(0.61) and threshold_at_far(distances, same, 0) < 0.61
    assert 0.62 > threshold_at_far(distances, same, 1 / 9) > 0.61  # one of nine impostors may pass
    assert equal_error_rate(distances, same) == (0.0, 0.5)


def test_separable_classes_give_perfect_figures_and_rounded_thresholds():
    rng = np.random.default_rng(0)
    distances = np.concatenate([rng.uniform(0.2, 0.5, 300), rng.uniform(0.6, 1.0, 3000)])
    same = np.arange(len(distances)) < 300
    order = rng.permutation(len(distances))
    result = calibrate("synthetic", distances[order], same[order], photos=0, skipped={})
    assert result.ten_fold_accuracy == 1.0 and result.equal_error_rate == 0.0
    assert result.tar_at_far["0.1%"]["true_accept_rate"] == 1.0
    assert result.recommended["match"] == np.floor(np.sort(distances[~same])[3] * 100) / 100
    assert ten_fold_accuracy(distances[order], same[order])[1] == 0.0


def test_needs_both_classes():
    with pytest.raises(CalibrationError, match="both same-person and different-person"):
        calibrate("x", np.array([0.1, 0.2]), np.array([True, True]), photos=2, skipped={})


def test_pairs_file_errors_name_the_line(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\t2\nAda 1 2\nAda 1 Bob\n")
    with pytest.raises(CalibrationError, match=r"pairs.txt:3: photo numbers must be integers"):
        read_pairs(str(pairs))
    pairs.write_text("1\t2\nAda 1 2 3 4 5\n")
    with pytest.raises(CalibrationError, match=r"pairs.txt:2: expected 3 or 4 fields, found 6"):
        read_pairs(str(pairs))


def test_folder_pairs_are_every_pair_once():
    pairs = folder_pairs({"ada": ["a1", "a2", "a3"], "bob": ["b1", "b2"]})
    assert len(pairs) == 10 and sum(p.same for p in pairs) == 4
    assert len({frozenset((p.first, p.second)) for p in pairs}) == 10


def test_best_threshold_sits_in_the_gap():
    from matcher.calibrate import best_threshold

    distances = np.array([0.2, 0.3, 0.3, 0.5, 0.7, 0.9])
    same = np.array([True, True, True, False, False, False])
    assert best_threshold(distances, same) == pytest.approx(0.4)
    assert best_threshold(np.array([0.5, 0.1]), np.array([False, True])) == pytest.approx(0.3)
