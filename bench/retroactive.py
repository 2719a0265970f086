"""Retroactive matching: a new enrollment checked against every face already stored.

    .venv/bin/python bench/retroactive.py [FACES] [RUNS]     (default 1,000,000 faces, 5 runs)

Builds a throw-away database with FACES stored faces (random 128-d embeddings
spread like real dlib ones, 4 faces per media item, in a temporary folder), of which 20 are the new person's, packs them as a scan
does at its end, then times ``Decider.match_new_references``: reading every
stored embedding (packed float16 blocks) from SQLite, one matrix product per
block against the person's references, and rematching and re-deciding the
media with a face within ``review``. Prints the median and each stage.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from matcher.decide import Decider
from matcher.match import Gallery
from matcher.policy import load_policy
from matcher.store import Store, to_blob


def build(store: Store, faces: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    # Like real dlib embeddings: all near a common centre, different people ~0.8
    # apart (real: 0.6-1.0), one person's faces ~0.4 apart.
    centre = rng.normal(0, 0.09, 128).astype(np.float32)
    person = centre + rng.normal(0, 0.05, 128).astype(np.float32)
    own = set(rng.choice(faces, 20, replace=False).tolist())
    db = store.db
    with store.write():
        batch_media, batch_faces = [], []
        for index in range(faces):
            sha = f"{index // 4:064x}"
            if index % 4 == 0:
                batch_media.append((sha, "image", "jpeg", "ok", 4032, 3024, "dlib_resnet_v1", 1))
                db.conn.execute("INSERT INTO files (path, sha256, status, scanned_in) VALUES (?, ?, 'ok', 1)",
                                [f"/media/{index // 4}.jpg", sha])
            vector = person + rng.normal(0, 0.025, 128) if index in own else centre + rng.normal(0, 0.05, 128)
            batch_faces.append((sha, index % 4, None, 0, 10, 10, 0, to_blob(vector.astype(np.float32))))
            if len(batch_faces) >= 100_000:
                db.conn.executemany("INSERT INTO media (sha256, kind, format, status, width, height, engine, "
                                    "gallery_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch_media)
                db.conn.executemany("INSERT INTO faces (sha256, seq, frame_time, top, right, bottom, left, embedding) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch_faces)
                batch_media, batch_faces = [], []
        db.conn.executemany("INSERT INTO media (sha256, kind, format, status, width, height, engine, "
                            "gallery_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch_media)
        db.conn.executemany("INSERT INTO faces (sha256, seq, frame_time, top, right, bottom, left, embedding) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", batch_faces)
    return person, sorted(own)


def main(faces: int, runs: int) -> None:
    rng = np.random.default_rng(0)
    policy = load_policy()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bench.db")
        started = time.perf_counter()
        person, own = build(store, faces, rng)
        print(f"built {faces:,} stored faces in {time.perf_counter() - started:.1f} s "
              f"({(Path(folder) / 'bench.db').stat().st_size / 1e6:.0f} MB)")
        started = time.perf_counter()
        store.pack_face_blocks()  # what the end of a scan does
        print(f"packed into blocks (once, at the end of the scan that stored them): "
              f"{time.perf_counter() - started:.1f} s")
        references = [(f"ref{i}", person + rng.normal(0, 0.025, 128).astype(np.float32)) for i in range(3)]
        added_person, _ = store.add_person_references("New Person", "dlib_resnet_v1", references, False, [])
        totals, loads, products = [], [], []
        for _ in range(runs):
            store.db.execute("DELETE FROM matches")
            decider = Decider(store, policy, "dlib_resnet_v1")
            started = time.perf_counter()
            media = decider.match_new_references(added_person.id)
            totals.append(time.perf_counter() - started)
            # The stages, separately.
            started = time.perf_counter()
            blocks = list(store.face_blocks())
            loads.append(time.perf_counter() - started)
            person = Gallery.build([(added_person.id, vector) for _, vector in references])
            started = time.perf_counter()
            for _, matrix in blocks:
                person.distances(matrix)
            products.append(time.perf_counter() - started)
        matched = store.db.execute("SELECT count(*) FROM matches WHERE person_id = ?", [added_person.id]).fetchone()[0]
        print(f"new person against {faces:,} stored faces: median {statistics.median(totals):.3f} s "
              f"over {runs} runs (min {min(totals):.3f}, max {max(totals):.3f})")
        print(f"  read the packed embeddings from SQLite: median {statistics.median(loads):.3f} s; "
              f"matrix product: {statistics.median(products):.3f} s; the rest (rematch of {len(media)} media, "
              f"decide, audit): {statistics.median(totals) - statistics.median(loads) - statistics.median(products):.3f} s")
        print(f"  matched {matched} of the person's {len(own)} planted faces")
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 5)
