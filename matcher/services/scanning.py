"""Scanning: observe files in workers, then match, decide and record them in this one writer.

Workers sit behind the standard :class:`concurrent.futures.Executor`
interface (:mod:`matcher.executors`, :mod:`matcher.cluster`) and run
:func:`matcher.observe.observe`. Files are streamed from the folder walk with
a bounded number in flight, so memory stays flat however large the folder.
Finished files are recorded in batches (up to :data:`BATCH_FILES` files, or
what :data:`BATCH_SECONDS` brought): one transaction per batch, so a killed
scan leaves whole files or nothing of them, and one matching and deciding
pass per batch; several scans (on a PostgreSQL store) record side by side.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Callable, Collection

from matcher.executors import make_executor
from matcher.faces import ModelsMissing
from matcher.model import Observation, Upload
from matcher.observe import ScanOptions, observe, observe_shipped, read_for_shipping
from matcher.policy import SEVERITY
from matcher.services import calibration
from matcher.services.deciding import Decider
from matcher.services.flood import FloodGuard
from matcher.services.session import Session
from matcher.store import StoreConflict, StoreFull, text_path
from matcher.walk import iter_files

# A batch is recorded when it holds this many files, or when its first file has waited this long.
BATCH_FILES = 64
BATCH_SECONDS = 0.25
# Two writers' batches that crossed (PostgreSQL found a deadlock): one is rolled back and run again.
CONFLICT_RETRIES = 5


@dataclass
class ScanSummary:
    files: int = 0
    scanned: int = 0
    unchanged: int = 0
    copies: int = 0
    errors: int = 0
    gone: int = 0
    floods: list[str] = field(default_factory=list)
    faces: int = 0
    matches: int = 0
    decisions: Counter = field(default_factory=Counter)
    error_files: list[tuple[str, str]] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    interrupted: bool = False
    disk_full: str | None = None  # the scan stopped: the database could not be written
    unmatched_manifest_paths: int = 0

    @property
    def done(self) -> int:
        """Files finished so far (``files`` counts those found, some still in the workers)."""
        return self.scanned + self.copies + self.unchanged

    def count_decisions(self, actions: Collection[str]) -> None:
        """Count a file's matches, and the file under its most severe decision."""
        self.matches += len(actions)
        self.decisions[max(actions, key=SEVERITY.__getitem__, default="none")] += 1

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "scanned": self.scanned,
            "unchanged": self.unchanged,
            "copies": self.copies,
            "errors": self.errors,
            "gone": self.gone,
            "flood_guard": self.floods,
            "faces": self.faces,
            "matches": self.matches,
            "decisions": {name: self.decisions.get(name, 0) for name in ("remove", "review", "allow", "none")},
            "error_files": [{"path": p, "error": e} for p, e in self.error_files],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "elapsed": round(self.elapsed, 3),
            "interrupted": self.interrupted,
            "disk_full": self.disk_full,
            "manifest_paths_not_found": self.unmatched_manifest_paths,
        }


OnFile = Callable[[ScanSummary, str, "str | None"], None]


def scan(session: Session, folders: list[str], manifest: dict[str, Upload] | None = None, workers: int = 1,
         options: ScanOptions = ScanOptions(), executor: Executor | None = None, on_file: OnFile | None = None,
         rescan: bool = False, ship_bytes: bool = False, follow_links: bool = False) -> ScanSummary:
    """Scan every file below ``folders`` and record faces, matches and decisions.

    A file already recorded with the same size and modification time is not
    read again; a file whose content was scanned under another path is linked
    to that scan (so a moved file keeps its results). Once every file has been
    seen, recorded files below ``folders`` that are no longer there are dropped.
    ``rescan``: also read again the files whose unmatched embeddings were not
    kept and that were not checked against the latest enrollment.
    ``executor``: any :class:`concurrent.futures.Executor` (a Dask cluster's,
    for one); ``workers`` then only bounds the files in flight. ``ship_bytes``:
    send each file's bytes with its task, for workers that do not share the
    scanned folders. ``follow_links``: also read the files that symbolic links
    below the folders point to outside them (otherwise each is an error, unread).
    ``on_file(summary, path, error)`` is called after each file.
    A full disk stops the scan (``disk_full``); what was recorded stays, and
    running the scan again finishes the rest.
    """
    own_executor = executor is None
    running = FolderScan(session, manifest or {}, options, executor or make_executor(workers), workers, on_file,
                         rescan, ship_bytes, None if follow_links else folders)
    try:
        return running.run(folders)
    finally:
        if own_executor:
            running.executor.shutdown(wait=not running.summary.interrupted, cancel_futures=True)


class FolderScan:
    """One scan's state: its number, its snapshot of the facts, the files in flight."""

    def __init__(self, session: Session, manifest: dict[str, Upload], options: ScanOptions, executor: Executor,
                 workers: int, on_file: OnFile | None, rescan: bool, ship_bytes: bool, confined_to: list[str] | None):
        self.session, self.store = session, session.store
        self.manifest, self.options, self.executor = manifest, options, executor
        self.on_file, self.rescan, self.ship_bytes = on_file, rescan, ship_bytes
        self.summary = ScanSummary()
        # Its snapshot of the facts is taken anew whenever they changed (see Decider).
        self.decider = session.decider()
        self.number = self.store.observations.begin_scan()
        self.guard = FloodGuard(self.store, self.decider, self.number)
        self.in_flight: deque[tuple[str, Future]] = deque()
        self.limit = max(2, 4 * max(1, workers))
        self.replacing: set[str] = set()  # files in flight for --rescan
        self.batch: list[tuple[Observation, Upload | None, bool]] = []  # observed, not yet recorded
        self.batch_started = 0.0
        # Links out of these folders are not followed (None: they are).
        self.roots = None if confined_to is None else [os.path.realpath(f) for f in confined_to]

    def run(self, folders: list[str]) -> ScanSummary:
        started = time.perf_counter()
        seen_manifest = 0
        try:
            for path in iter_files(folders):
                self.summary.files += 1
                seen_manifest += path in self.manifest
                if self._outside(path):
                    self._finish_now(Observation(path=path, engine=self.options.engine.name, file_error=(
                        "a symbolic link to a file outside the scanned folders: not followed "
                        "(scan --follow-links reads such files)")))
                elif not self._skip_unchanged(path):
                    self._submit(path)
                while len(self.in_flight) >= self.limit or (self.in_flight and self.in_flight[0][1].done()):
                    self._finish(*self.in_flight.popleft())
            while self.in_flight:
                self._finish(*self.in_flight.popleft())
            self._flush()
        except (KeyboardInterrupt, StoreFull) as stop:
            self.summary.interrupted = True
            if isinstance(stop, StoreFull):
                self.summary.disk_full = str(stop)
            for _, future in self.in_flight:
                future.cancel()
            if not self.summary.disk_full:
                self._flush()  # the files already observed are kept (a second Ctrl-C drops them)
        if not self.summary.disk_full:
            self._wrap_up(folders)
        self.summary.floods = self.guard.tripped
        self.summary.unmatched_manifest_paths = max(0, len(self.manifest) - seen_manifest)
        self.summary.elapsed = time.perf_counter() - started
        return self.summary

    def _outside(self, path: str) -> bool:
        """A symbolic link whose file lies outside the scanned folders (when links are not followed)."""
        if self.roots is None or not os.path.islink(path):
            return False
        target = os.path.realpath(path)
        return not any(target == root or target.startswith(root.rstrip(os.sep) + os.sep) for root in self.roots)

    def _skip_unchanged(self, path: str) -> bool:
        """Whether the file is recorded as it is: then it is only marked seen (and its metadata updated)."""
        observations = self.store.observations
        try:
            stat = os.stat(path)
            unchanged = observations.file_unchanged(path, stat.st_size, stat.st_mtime_ns)
        except OSError:
            unchanged = False  # the worker reports why
        if unchanged and self.rescan and observations.files_needing_rescan(path):
            self.replacing.add(path)
            return False
        if not unchanged:
            return False
        self.summary.unchanged += 1
        observations.mark_seen(path, self.number)
        if path in self.manifest and observations.update_upload(path, self.manifest[path]):
            self.decider.redecide([observations.file_sha256(path)])
        self.summary.count_decisions(self.store.decisions.of_file(path).values())
        if self.on_file:
            self.on_file(self.summary, text_path(path), None)
        return True

    def _submit(self, path: str) -> None:
        shipped = read_for_shipping(path) if self.ship_bytes else None
        if shipped is not None:
            future = self.executor.submit(observe_shipped, path, *shipped, self.options)
        else:  # also when this machine cannot read it: observe() says why
            future = self.executor.submit(observe, path, self.options)
        self.in_flight.append((path, future))

    def _finish(self, path: str, future: Future) -> None:
        try:
            obs = future.result()
        except (KeyboardInterrupt, SystemExit, ModelsMissing):
            raise  # a broken install stops the scan: no file is to blame
        except Exception as exc:  # the task itself failed: a worker died, on every retry
            obs = Observation(path=path, engine=self.options.engine.name,
                              file_error=f"no worker could process the file ({type(exc).__name__}: {exc})")
        self._finish_now(obs)

    def _finish_now(self, obs: Observation) -> None:
        replace = obs.path in self.replacing
        self.replacing.discard(obs.path)
        if not self.batch:
            self.batch_started = time.perf_counter()
        self.batch.append((obs, self.manifest.get(obs.path), replace))
        if len(self.batch) >= BATCH_FILES or time.perf_counter() - self.batch_started >= BATCH_SECONDS:
            self._flush()

    def _flush(self) -> None:
        """Record the batch in one transaction, then count its files and check the flood guard."""
        if not self.batch:
            return
        started = time.perf_counter()
        for attempt in range(CONFLICT_RETRIES):
            try:
                copies = record_batch(self.session, self.decider, self.batch, self.number)
                break
            except StoreConflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(random.uniform(0.01, 0.1) * (attempt + 1))
        batch, self.batch = self.batch, []
        self.summary.seconds["match+decide+write"] += time.perf_counter() - started
        decisions = self.store.decisions.of_files([obs.path for obs, _, _ in batch])
        for (obs, _, _), copy in zip(batch, copies):
            count_recorded(self.summary, obs, copy)
            decided = decisions[obs.path]
            self.summary.count_decisions(decided.values())
            self.guard.check(obs.sha256, decided)
            if self.on_file:
                self.on_file(self.summary, text_path(obs.path), obs.error)

    def _wrap_up(self, folders: list[str]) -> None:
        store = self.store
        if not self.summary.interrupted:
            self.summary.gone = store.observations.forget_unseen([os.path.abspath(f) for f in folders], self.number)
            if self.summary.gone:
                self.decider.end_orphaned_not_them()  # a look-alike ruled in a file now gone clears no more
        store.observations.pack_blocks()  # so that the next enrollment's retroactive matching reads them fast
        calibration.after_scan(self.session, "system")  # the background grew: hubs may show now


def record_upload(session: Session, obs: Observation, upload: Upload | None = None) -> str | None:
    """Record an uploaded file already observed (under its label), with its matches and decisions.

    Returns the reason when the upload is no usable media; then nothing is recorded.
    """
    if obs.error:
        return obs.error
    record_batch(session, session.decider(), [(obs, upload, False)], session.store.observations.begin_scan())
    calibration.after_upload(session, "system")
    return None


def record_batch(session: Session, decider: Decider, batch: list[tuple[Observation, Upload | None, bool]],
                 scan_number: int) -> list[bool]:
    """Record observed files ``(observation, upload, replace)`` in one transaction, then match and
    decide their media in one pass; for each file, whether it was a copy of media already recorded."""
    store = session.store
    copies, new, copied = [], [], []
    with store.write():
        known = store.observations.recorded_media([obs.sha256 for obs, _, _ in batch if obs.sha256 is not None])
        for obs, upload, replace in batch:
            copy = obs.sha256 in known and not replace
            if not copy and not session.policy.keep_unmatched_embeddings:
                # No-retention: the embedding of a face that matches nobody is not stored.
                kept = [face for face in obs.faces if face.embedding is not None]
                matched = decider.matched_faces(kept)
                for face, keep in zip(kept, matched):
                    if not keep:
                        face.embedding = None
            store.observations.record(obs, upload, scan_number, replace=replace)
            copies.append(copy)
            if obs.sha256 is not None:
                (copied if copy else new).append(obs.sha256)
                known.add(obs.sha256)
        new = list(dict.fromkeys(new))
        if new:
            decider.update(new)
        copied = [sha256 for sha256 in dict.fromkeys(copied) if sha256 not in new]
        if copied:
            decider.redecide(copied)  # their faces are matched already
    return copies


def count_recorded(summary: ScanSummary, obs: Observation, copy: bool) -> None:
    for stage, seconds in obs.seconds.items():
        summary.seconds[stage] += seconds
    if copy:
        summary.copies += 1
    else:
        summary.scanned += 1
        summary.faces += len(obs.faces)
    if obs.error:
        summary.errors += 1
        summary.error_files.append((text_path(obs.path), obs.error))
