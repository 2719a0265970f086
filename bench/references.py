"""How to compare a face with a person's several references, and whether jitter helps.

    .venv/bin/python bench/references.py [../shared/faces]

For lfw10 (3 references per person) and bbt (2 references; crops only), over
20 random choices of references: each remaining photo is compared with every
enrolled person by three strategies, and true / false accepts counted.

- nearest: the distance to the person's nearest reference (what the matcher does)
- mean-of-2-nearest: the mean distance to the two nearest references
- to-mean-embedding: the distance to the mean of the person's reference embeddings

Then, for the nearest strategy, references embedded with 10 and 100 jitters
(probes always with 1, as a scan does).
"""

import random
import sys
import time
from pathlib import Path

import numpy as np

from matcher.faces import DlibSpec
from matcher.media import decode_image

SETS = {"lfw10": ("*.jpg", 3), "bbt": ("*.png", 2)}
SPLITS = 20
MATCH, REVIEW = 0.55, 0.62


def embed(paths: list[Path], jitters: int) -> np.ndarray:
    engine = DlibSpec(jitters=jitters).build()
    vectors = []
    for path in paths:
        faces = engine.faces(decode_image(path.read_bytes()))
        vectors.append(max(faces, key=lambda f: f.box.width * f.box.height).embedding)
    return np.stack(vectors).astype(np.float64)


def strategy_distances(probe: np.ndarray, refs: np.ndarray) -> dict[str, float]:
    d = np.sort(np.linalg.norm(refs - probe, axis=1))
    return {
        "nearest": d[0],
        "mean-of-2-nearest": d[:2].mean(),
        "to-mean-embedding": float(np.linalg.norm(refs.mean(axis=0) - probe)),
    }


def evaluate(people: dict[str, list[int]], probes: np.ndarray, refs: np.ndarray, per_person: int,
             rng: random.Random) -> dict[str, tuple[list, list]]:
    """{strategy: (genuine distances, impostor distances)} over SPLITS random reference choices."""
    out: dict[str, tuple[list, list]] = {}
    for _ in range(SPLITS):
        chosen = {name: rng.sample(indexes, per_person) for name, indexes in people.items()}
        for name, indexes in people.items():
            for probe in (i for i in indexes if i not in chosen[name]):
                for other, ref_indexes in chosen.items():
                    for strategy, distance in strategy_distances(probes[probe], refs[ref_indexes]).items():
                        genuine, impostor = out.setdefault(strategy, ([], []))
                        (genuine if other == name else impostor).append(distance)
    return out


def figures(genuine: list, impostor: list) -> str:
    g, i = np.array(genuine), np.array(impostor)
    ordered = np.sort(i)
    far1, far01 = ordered[int(0.01 * len(i))], ordered[int(0.001 * len(i))]
    return (f"TAR@FAR<=1% {100 * (g < far1).mean():5.1f}  TAR@FAR<=0.1% {100 * (g < far01).mean():5.1f}  "
            f"at {MATCH}: TAR {100 * (g <= MATCH).mean():5.1f} FAR {100 * (i <= MATCH).mean():5.3f}  "
            f"at {REVIEW}: TAR {100 * (g <= REVIEW).mean():5.1f} FAR {100 * (i <= REVIEW).mean():5.3f}")


def main(root: Path) -> None:
    for name, (pattern, per_person) in SETS.items():
        folders = sorted(p for p in (root / name).iterdir() if p.is_dir() and p.name != "group")
        paths = [photo for folder in folders for photo in sorted(folder.glob(pattern))]
        people: dict[str, list[int]] = {}
        for index, path in enumerate(paths):
            people.setdefault(path.parent.name, []).append(index)
        plain = embed(paths, 1)
        results = evaluate(people, plain, plain, per_person, random.Random(1))
        genuine, impostor = results["nearest"]
        print(f"\n{name}: {len(folders)} people, {len(paths)} photos, {per_person} references each, {SPLITS} "
              f"random splits: {len(genuine)} genuine and {len(impostor)} impostor comparisons per strategy")
        for strategy, (genuine, impostor) in results.items():
            print(f"  {strategy:37} {figures(genuine, impostor)}")
        for jitters in (10, 100):
            started = time.perf_counter()
            jittered = embed(paths, jitters)
            seconds = (time.perf_counter() - started) / len(paths)
            genuine, impostor = evaluate(people, plain, jittered, per_person, random.Random(1))["nearest"]
            label = f"nearest, refs {jitters} jitters ({seconds:.2f} s/photo)"
            print(f"  {label:37} {figures(genuine, impostor)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/faces"))
