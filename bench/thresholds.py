"""Measure face-distance thresholds on LFW-style pairs: the figures quoted in the README.

    .venv/bin/python bench/thresholds.py [../shared/faces/lfw10/pairs.txt]
"""

import sys

import numpy as np

from matcher.calibrate import pair_distances, rates, read_pairs, strictest_safe_threshold, ten_fold_accuracy
from matcher.engine import DlibEngine


def main(pairs_path: str) -> None:
    pairs = read_pairs(pairs_path)
    distances, same = pair_distances(pairs, DlibEngine())
    print(f"{pairs_path}: {len(pairs)} pairs, {len(distances)} with a face in both images "
          f"({same.sum()} same-person, {(~same).sum()} different-person)")
    print(f"same-person distance:      median {np.median(distances[same]):.3f}, "
          f"95th percentile {np.percentile(distances[same], 95):.3f}, max {distances[same].max():.3f}")
    print(f"different-person distance: min {distances[~same].min():.3f}, "
          f"5th percentile {np.percentile(distances[~same], 5):.3f}, median {np.median(distances[~same]):.3f}")
    safe = strictest_safe_threshold(distances, same)
    print(f"largest threshold with no false accept: {safe:.3f}")
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6):
        r = rates(distances, same, threshold)
        print(f"  at {threshold:.2f}: true-accept {100 * r['true_accept_rate']:5.1f} %, "
              f"false-accept {100 * r['false_accept_rate']:5.2f} %, accuracy {100 * r['accuracy']:5.1f} %")
    mean, std = ten_fold_accuracy(distances, same)
    print(f"10-fold accuracy: {100 * mean:.2f} % ± {100 * std:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/faces/lfw10/pairs.txt")
