"""Writers: files recorded per second by 1, 2 and 4 scans at once, on SQLite and on PostgreSQL.

    .venv/bin/python bench/writers.py [FILES_PER_SCAN] [RUNS] [BACKENDS]   (default 1500, 3, sqlite,postgresql)

What is timed is the writer, not the face model: each scan is a separate
process running the real scan service (walk, skip-unchanged check, batched
record, matching against a gallery of 200 enrolled people, deciding, audit
entries, flood guard, wrap-up) on a folder of its own, with a fake engine: an
executor that answers each file at once with two faces (made-up embeddings;
one file in ten shows an enrolled person, so it gets a decision and an audit
entry). Each configuration runs on a fresh database; files/s is all files
recorded over the wall time from the scans' common start to the last one's
end, median of RUNS. The PostgreSQL cluster is a throw-away one started here
(initdb + pg_ctl, default durability: fsync and synchronous commit on). Also
timed: one scan with per-file transactions (BATCH_FILES = 1, the old way).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import queue
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's matcher, and the tests' throw-away cluster

from matcher.model import Box, Observation, ObservedFace, Reference  # noqa: E402
from matcher.observe import SCAN_ENGINE  # noqa: E402
from matcher.policy import load_policy  # noqa: E402
from matcher.services import open_session  # noqa: E402

PEOPLE = 200


def person_vector(index: int) -> np.ndarray:
    vector = np.random.default_rng(10_000 + index).normal(size=128)
    return (vector / np.linalg.norm(vector) * 0.6).astype(np.float32)


class FakeEngine(Executor):
    """Answers each file at once: two faces, one of them an enrolled person's in one file of ten."""

    POOL = np.random.default_rng(0).normal(size=(4096, 128)).astype(np.float32)  # cheap to answer from
    GALLERY = np.stack([person_vector(index) for index in range(PEOPLE)])

    def submit(self, fn, path, *args, **kwargs):
        digest = hashlib.sha256(path.encode()).hexdigest()
        seed = int(digest[:8], 16)
        vectors = [self.POOL[seed % 4096].copy(), self.POOL[(seed >> 12) % 4096].copy()]
        if seed % 10 == 0:
            vectors[0] = self.GALLERY[seed % PEOPLE] + 0.01 * self.POOL[(seed >> 3) % 4096]
        stat = os.stat(path)
        future = Future()
        future.set_result(Observation(
            path=path, engine=SCAN_ENGINE.name, size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest,
            kind="image", format="jpeg", width=640, height=480,
            faces=[ObservedFace(Box(10, 60 + 60 * i, 60, 10 + 60 * i), v) for i, v in enumerate(vectors)]))
        return future


def make_folders(root: Path, scans: int, files: int) -> list[Path]:
    folders = []
    for index in range(scans):
        folder = root / f"scan-{index}"
        folder.mkdir()
        for number in range(files):
            (folder / f"{number:05d}.jpg").write_bytes(b"")
        folders.append(folder)
    return folders


def enroll(db: str) -> None:
    with open_session(db, load_policy()) as session:
        store = session.store
        for index in range(PEOPLE):
            person, _ = store.people.add_references(f"person {index}", SCAN_ENGINE.name,
                                                    [Reference(f"ref-{index}", person_vector(index))], False, [])
            store.people.set_verified(person.id, "operator")


def one_scan(db: str, folder: str, start, batch: int, results) -> None:
    from matcher.services import scanning

    scanning.BATCH_FILES = batch
    with open_session(db, load_policy()) as session:
        start.wait()
        started = time.perf_counter()
        summary = scanning.scan(session, [folder], executor=FakeEngine(), workers=8)
        results.put((summary.scanned, time.perf_counter() - started))


def run(db: str, folders: list[Path], batch: int) -> float:
    """Scans of ``folders`` at once, one process each; files recorded per second."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [context.Process(target=one_scan, args=(db, str(folder), start, batch, results)) for folder in folders]
    for process in processes:
        process.start()
    time.sleep(4)  # every process has opened its session (imports, schema, decider)
    began = time.perf_counter()
    start.set()
    outcomes = []
    while len(outcomes) < len(processes):
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:
            failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if failed:
                for process in processes:
                    process.kill()
                raise RuntimeError(f"a scan process failed (exit {failed[0]}): see its traceback above")
    elapsed = time.perf_counter() - began
    for process in processes:
        process.join()
    recorded = sum(scanned for scanned, _ in outcomes)
    assert recorded == sum(len(os.listdir(folder)) for folder in folders), outcomes
    return recorded / elapsed


CONFIGURATIONS = (("1 scan, per-file transactions", 1, 1), ("1 scan", 1, 64), ("2 scans", 2, 64), ("4 scans", 4, 64))


def bench(backend: str, files: int, runs: int, cluster) -> dict:
    figures, serial = {}, 0
    for label, scans, batch in CONFIGURATIONS:
        rates = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as folder:
                serial += 1
                name = f"writers_{serial}"
                db = cluster.create_database(name) if backend == "postgresql" else str(Path(folder) / "w.db")
                enroll(db)
                rates.append(run(db, make_folders(Path(folder), scans, files), batch))
                if backend == "postgresql":
                    cluster.drop_database(name)
        figures[label] = statistics.median(rates)
        print(f"{backend:>10}  {label:<30} {figures[label]:8.0f} files/s  (runs: "
              f"{', '.join(f'{r:.0f}' for r in rates)})", flush=True)
    return figures


def main(files: int, runs: int, backends: list[str]) -> None:
    print(f"{files} files per scan, median of {runs} runs, {os.cpu_count()} cores; load average before: "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    cluster = None
    if "postgresql" in backends:
        from pgcluster import Cluster

        cluster = Cluster().start()
    try:
        results = {backend: bench(backend, files, runs, cluster) for backend in backends}
    finally:
        if cluster is not None:
            cluster.stop()
    if len(results) == 2:
        print("postgresql / sqlite: " + ", ".join(
            f"{label} {results['postgresql'][label] / results['sqlite'][label]:.2f}x" for label, _, _ in CONFIGURATIONS))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1500, int(sys.argv[2]) if len(sys.argv) > 2 else 3,
         (sys.argv[3] if len(sys.argv) > 3 else "sqlite,postgresql").split(","))
