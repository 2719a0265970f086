"""Erasure on PostgreSQL: which steps leave none of an erased person's bytes in the data directory.

    .venv/bin/python bench/erasure.py [FACES] [VARIANTS]   (default 20,000 and 400 stored faces, every variant)

For each way of compacting, a throw-away cluster (tests/pgcluster.py) gets a
person enrolled, FACES stored faces (one in 2,000 the person's, the rest made
up) matched and packed in blocks, and a checkpoint; then `forget` runs with that
compaction, and every file of the data directory is searched for the person's
embeddings (float32 and the packed float16 copies) and name. Prints what is
left and how long forget took.

- none: the deletes alone (dead row versions, the write-ahead log).
- vacuum: plain VACUUM of the tables, pg_switch_wal(), CHECKPOINT.
- vacuum-full-no-switch: VACUUM FULL of the tables, CHECKPOINT.
- store.compact: what forget does (VACUUM FULL, pg_switch_wal(), CHECKPOINT), wal_recycle = off.
- unchecked-recycle-on: the same steps on a server with wal_recycle = on (store.compact refuses it).
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's matcher, and the tests' throw-away cluster

from helpers import files_below  # noqa: E402
from pgcluster import Cluster  # noqa: E402

from matcher.model import Box, Observation, ObservedFace, Reference  # noqa: E402
from matcher.policy import load_policy  # noqa: E402
from matcher.services import open_session  # noqa: E402
from matcher.services.people import forget  # noqa: E402
from matcher.store.core import to_blob  # noqa: E402
from matcher.store.schema import COMPACTED  # noqa: E402

NAME = "Zelda Erasable"


def steps(database, variant: str):
    def run(*statements):
        for statement in statements:
            database.execute(statement)

    return {
        "none": lambda: None,
        "vacuum": lambda: run(*(f"VACUUM {t}" for t in COMPACTED), "SELECT pg_switch_wal()", "CHECKPOINT"),
        "vacuum-full-no-switch": lambda: run(*(f"VACUUM FULL {t}" for t in COMPACTED), "CHECKPOINT"),
        "store.compact": lambda: database.compact(tables=COMPACTED),
        "unchecked-recycle-on": lambda: run(*(f"VACUUM FULL {t}" for t in COMPACTED), "SELECT pg_switch_wal()",
                                            "CHECKPOINT"),
    }[variant]


def run(variant: str, faces: int) -> None:
    settings = {"wal_recycle": "on"} if variant == "unchecked-recycle-on" else {}
    with Cluster(settings) as cluster:
        session = open_session(cluster.create_database("erasure"), load_policy())
        store = session.store
        rng = np.random.default_rng(1)
        own = (rng.normal(size=128) * 0.05).astype(np.float32)
        store.people.add_references(NAME, "dlib_resnet_v1", [Reference("r", own)], False, [])
        secrets = [to_blob(own)]
        with store.write():
            for i in range(faces // 4):
                vectors = [rng.normal(size=128).astype(np.float32) for _ in range(4)]
                if i % 500 == 0:
                    vectors[0] = own + rng.normal(0, 0.01, 128).astype(np.float32)
                    secrets.append(to_blob(vectors[0]))
                store.observations.record(Observation(
                    path=f"/m/{i}.jpg", engine="dlib_resnet_v1", sha256=f"{i:064x}", kind="image", format="jpeg",
                    width=1, height=1, faces=[ObservedFace(Box(0, 1, 1, 0), v) for v in vectors]), None, 1)
        session.decider().update()
        store.observations.pack_blocks()
        store.database.execute("CHECKPOINT")
        packed = [np.frombuffer(s, "<f4").astype("<f2").tobytes() for s in secrets[1:]]
        before = files_below(cluster.data)
        assert all(s in before for s in secrets + packed) and NAME.encode() in before  # the search finds them
        store.compact = steps(store.database, variant)
        started = time.perf_counter()
        forget(session, store.people.by_name(NAME), "bench")
        took = time.perf_counter() - started
        after = files_below(cluster.data)
        print(f"{variant:>22}, {faces:,} faces: forget {took:.2f} s; left in the data directory: embeddings "
              f"{sum(s in after for s in secrets)}/{len(secrets)}, packed copies {sum(p in after for p in packed)}/"
              f"{len(packed)}, name {'yes' if NAME.encode() in after else 'no'} ({len(after) / 1e6:.0f} MB searched)",
              flush=True)
        session.close()


VARIANTS = ("none", "vacuum", "vacuum-full-no-switch", "store.compact", "unchecked-recycle-on")

if __name__ == "__main__":
    sizes = [int(sys.argv[1])] if len(sys.argv) > 1 else [20_000, 400]
    for size in sizes:
        for variant in sys.argv[2].split(",") if len(sys.argv) > 2 else VARIANTS:
            run(variant, size)
