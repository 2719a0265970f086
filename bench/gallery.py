"""Matching cost per image against many enrolled references: one matrix product whatever their number.

    .venv/bin/python bench/gallery.py [REFERENCES] [RUNS]     (default 100,000 references, 20 runs)

REFERENCES random 128-d references of REFERENCES / 3 people; each run matches
one image's faces (1, 4 and 16) with ``Gallery.distances`` and assigns them.
"""

import statistics
import sys
import time

import numpy as np

from matcher.gallery import Gallery, assign


def main(references: int, runs: int) -> None:
    rng = np.random.default_rng(0)
    rows = [(index // 3, rng.normal(0, 0.09, 128).astype(np.float32)) for index in range(references)]
    started = time.perf_counter()
    gallery = Gallery.build(rows)
    print(f"{references:,} references of {len(gallery):,} people: gallery built in {time.perf_counter() - started:.2f} s")
    for faces in (1, 4, 16):
        times = []
        for _ in range(runs):
            probe = rng.normal(0, 0.09, (faces, 128)).astype(np.float32)
            started = time.perf_counter()
            assign(gallery.distances(probe), gallery.person_ids, 0.62)
            times.append(time.perf_counter() - started)
        print(f"  an image with {faces:2d} face(s): median {1000 * statistics.median(times):.1f} ms per image "
              f"(min {1000 * min(times):.1f}, max {1000 * max(times):.1f})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, int(sys.argv[2]) if len(sys.argv) > 2 else 20)
