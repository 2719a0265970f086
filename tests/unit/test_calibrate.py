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


def test_probes_fall_in_the_first_band_they_are_under_and_rates_are_per_band():
    from matcher.calibrate import DEFAULT_BANDS, Probe, band_of, band_rates
    from matcher.model import FaceQuality

    assert band_of(FaceQuality(35, 100.0, 30.0, 20.0), DEFAULT_BANDS) == "tiny"  # also dark: the first one wins
    assert band_of(FaceQuality(25, 100.0, 120.0, 20.0), DEFAULT_BANDS) == "unmeasured"
    assert band_of(FaceQuality(100, 100.0, 30.0, 20.0), DEFAULT_BANDS) == "dark"
    assert band_of(FaceQuality(70, 100.0, 120.0, 20.0), DEFAULT_BANDS) == "small"
    assert band_of(FaceQuality(120, 100.0, 120.0, 20.0), DEFAULT_BANDS) == "general"
    assert band_of(FaceQuality(120, 100.0, 120.0, 20.0, frontal=False), DEFAULT_BANDS) == "not-frontal"

    rng = np.random.default_rng(0)

    def unit(v):
        return (v / np.linalg.norm(v)).astype(np.float32)

    centres = {person: unit(rng.normal(size=128)) for person in "abcd"}
    clean = {f"{p}{i}": unit(centres[p] + 0.02 * rng.normal(size=128)) for p in "abcd" for i in range(3)}
    owners = {photo: photo[0] for photo in clean}
    probes = [Probe(owners[photo], photo, "blur", "blurred", clean[photo] + 0.01) for photo in clean]
    table = band_rates(clean, owners, probes, "band", {"match": 0.55, "review": 0.62})
    row = table["blurred"]
    # Each probe against the 11 other photos: 2 of its person, 9 of others (never its own photo).
    assert (row["probes"], row["same_pairs"], row["different_pairs"]) == (12, 24, 108)
    assert row["at_match"]["false_accept_rate"] == 0.0 and row["at_match"]["true_accept_rate"] == 1.0
    assert row["match_at_far"] is None  # 108 pairs cannot show a 0.1 % false-accept rate
    assert row["review_at_far"]["threshold"] >= 0.55
