"""Retroactive matching: a new enrollment checked against every face already stored.

    .venv/bin/python bench/retroactive.py [FACES] [RUNS] [BACKENDS]   (default 1,000,000 faces, 5 runs, sqlite)

Builds a throw-away database with FACES stored faces (random 128-d embeddings
spread like real dlib ones, 4 faces per media item, in a temporary folder), of which 20 are the new person's, packs them as a scan
does at its end, then times ``Decider.match_new_references``: reading every
stored embedding (packed float16 blocks) from the database, one matrix product per
block against the person's references, and rematching and re-deciding the
media with a face within ``review``. Prints the median and each stage.

BACKENDS ``sqlite,postgresql``: timed on SQLite, then the database built so is moved (``Store.copy_into``,
what ``consent-matcher migrate`` does) into a throw-away PostgreSQL cluster
(tests/pgcluster.py), and the timing runs there.
"""

import statistics
import sys
from contextlib import closing
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's matcher, and the tests' throw-away cluster

from matcher.gallery import Gallery  # noqa: E402
from matcher.model import Box, Observation, ObservedFace, Reference  # noqa: E402
from matcher.policy import load_policy  # noqa: E402
from matcher.services import open_session  # noqa: E402
from matcher.store import Store  # noqa: E402

BOX = Box(0, 100, 100, 0)  # a face of 100 px: the rules' general band


def build(store, faces: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    # Like real dlib embeddings: all near a common centre, different people ~0.8
    # apart (real: 0.6-1.0), one person's faces ~0.4 apart.
    centre = rng.normal(0, 0.09, 128).astype(np.float32)
    person = centre + rng.normal(0, 0.05, 128).astype(np.float32)
    own = set(rng.choice(faces, 20, replace=False).tolist())
    for start in range(0, faces, 100_000):  # one transaction per 100,000 faces
        with store.write():
            for first in range(start, min(faces, start + 100_000), 4):
                vectors = [person + rng.normal(0, 0.025, 128) if index in own else centre + rng.normal(0, 0.05, 128)
                           for index in range(first, min(faces, first + 4))]
                store.observations.record(Observation(
                    path=f"/media/{first // 4}.jpg", engine="dlib_resnet_v1", sha256=f"{first // 4:064x}",
                    kind="image", format="jpeg", width=4032, height=3024,
                    faces=[ObservedFace(BOX, vector.astype(np.float32)) for vector in vectors]), None, 1)
    return person, sorted(own)


def measure(session, label: str, faces: int, runs: int, references: list[Reference], own: list[int]) -> None:
    store = session.store
    added_person = store.people.by_name("New Person") or store.people.add_references(
        "New Person", "dlib_resnet_v1", references, False, [])[0]
    totals, loads, products = [], [], []
    for _ in range(runs):
        store.decisions.replace_matches(None, [])
        decider = session.decider()
        started = time.perf_counter()
        media = decider.match_new_references(added_person.id)
        totals.append(time.perf_counter() - started)
        # The stages, separately.
        started = time.perf_counter()
        blocks = list(store.observations.blocks())
        loads.append(time.perf_counter() - started)
        person = Gallery.build([(added_person.id, ref.embedding) for ref in references])
        started = time.perf_counter()
        for _, matrix in blocks:
            person.distances(matrix)
        products.append(time.perf_counter() - started)
        del blocks
    matched = store.decisions.match_count(added_person.id)
    print(f"{label}: new person against {faces:,} stored faces: median {statistics.median(totals):.3f} s "
          f"over {runs} runs (min {min(totals):.3f}, max {max(totals):.3f})")
    print(f"  read the packed embeddings: median {statistics.median(loads):.3f} s; "
          f"matrix product: {statistics.median(products):.3f} s; the rest (rematch of {len(media)} media, "
          f"decide, audit): {statistics.median(totals) - statistics.median(loads) - statistics.median(products):.3f} s")
    print(f"  matched {matched} of the person's {len(own)} planted faces", flush=True)


def main(faces: int, runs: int, backends: list[str]) -> None:
    rng = np.random.default_rng(0)
    policy = load_policy()
    with tempfile.TemporaryDirectory() as folder:
        session = open_session(Path(folder) / "bench.db", policy)
        store = session.store
        started = time.perf_counter()
        person, own = build(store, faces, rng)
        print(f"built {faces:,} stored faces in {time.perf_counter() - started:.1f} s "
              f"({(Path(folder) / 'bench.db').stat().st_size / 1e6:.0f} MB)", flush=True)
        started = time.perf_counter()
        store.observations.pack_blocks()  # what the end of a scan does
        print(f"packed into blocks (once, at the end of the scan that stored them): "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        references = [Reference(f"ref{i}", person + rng.normal(0, 0.025, 128).astype(np.float32)) for i in range(3)]
        if "sqlite" in backends:
            measure(session, "sqlite", faces, runs, references, own)
        if "postgresql" in backends:
            from pgcluster import Cluster

            with Cluster() as cluster:
                url = cluster.create_database("retroactive")
                started = time.perf_counter()
                with closing(Store(url)) as target:
                    rows = store.copy_into(target)
                print(f"moved to PostgreSQL (what `migrate` does): {sum(rows.values()):,} rows in "
                      f"{time.perf_counter() - started:.1f} s", flush=True)
                with open_session(url, policy) as moved:
                    moved.store.database.execute("VACUUM ANALYZE")
                    measure(moved, "postgresql", faces, runs, references, own)
        session.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 5,
         (sys.argv[3] if len(sys.argv) > 3 else "sqlite").split(","))
