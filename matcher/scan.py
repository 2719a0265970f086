"""Scan folders of media: load -> detect -> embed in workers; match -> decide -> record in one writer.

Workers sit behind the standard :class:`concurrent.futures.Executor`
interface, so any executor (a local process pool, this module's inline one,
or a distributed one) runs the same code path. Files are streamed from the
folder walk with a bounded number in flight, so memory stays flat however
large the folder.
"""

from __future__ import annotations

import hashlib
import os
import signal
import tempfile
import time
from collections import Counter, deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Iterator

import numpy as np

from matcher.decide import Decider, refresh_stale_decisions
from matcher.engine import Box, DlibEngine, ModelsMissing, process_engine
from matcher.media import (
    DEFAULT_MAX_IMAGE_FRAMES,
    DEFAULT_MAX_PIXELS,
    Frame,
    MediaError,
    decode_image,
    hash_stream,
    image_frames,
    sniff,
    video_frames,
)
from matcher.policy import SEVERITY, Policy
from matcher.store import Store, text_path

# Images are decoded from memory; a file larger than this is refused unread.
MAX_IMAGE_BYTES = 256 * 1024 * 1024


@dataclass
class ObservedFace:
    box: Box
    embedding: np.ndarray | None  # None once dropped (no-retention setting)
    frame_time: float | None = None


@dataclass
class Observation:
    """What a worker saw in one file. ``file_error``: the file could not be read;
    ``media_error``: it was read but is no usable media."""

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    kind: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    engine: str = DlibEngine.name
    faces: list[ObservedFace] = field(default_factory=list)
    file_error: str | None = None
    media_error: str | None = None
    seconds: dict = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return self.file_error or self.media_error


# Measured on face_recognition's high-resolution test photos: a face at least
# this many pixels wide in a JPEG decoded at 1/2 or 1/4 size embeds within
# 0.045-0.075 of its full-size embedding (about what a box shifted by a few
# pixels gives); at 60-90 px it drifts 0.08-0.15, at ~40 px 0.15-0.3.
EMBED_REDUCED_MIN_FACE = 100


@dataclass(frozen=True)
class ScanOptions:
    detect_max_side: int = 1600
    max_pixels: int = DEFAULT_MAX_PIXELS
    video_every_seconds: float = 1.0
    max_video_frames: int = 3600
    max_image_frames: int = DEFAULT_MAX_IMAGE_FRAMES
    min_face: int | None = None  # smallest face of interest, px of the original (None: detect like face_recognition)
    detector: str = "blazeface"  # or "hog": HOG over the whole image, like face_recognition (see DlibEngine)


def observe(path: str, options: ScanOptions = ScanOptions()) -> Observation:
    """Read one file and find its faces. Never raises for a bad file: the reason is recorded."""
    obs = Observation(path=path)
    started = time.perf_counter()
    try:
        stat = os.stat(path)
        obs.size, obs.mtime_ns = stat.st_size, stat.st_mtime_ns
        if not os.path.isfile(path):
            obs.file_error = "not a regular file"
            return obs
        with open(path, "rb") as handle:
            head = handle.read(64)
            detected = sniff(head)
            if detected and detected[0] == "image" and stat.st_size <= MAX_IMAGE_BYTES:
                data = head + handle.read()
                obs.sha256 = hashlib.sha256(data).hexdigest()
            else:
                data = None
                obs.sha256 = hash_stream(handle, head)
    except FileNotFoundError:
        obs.file_error = "file not found (deleted, or a broken symbolic link)"
        return obs
    except PermissionError:
        obs.file_error = "permission denied: cannot read the file"
        return obs
    except OSError as exc:
        obs.file_error = f"cannot read the file: {exc.strerror or exc}"
        return obs
    obs.seconds["read"] = time.perf_counter() - started

    if obs.size == 0:
        obs.media_error = "empty file (0 bytes)"
        return obs
    if detected is None:
        obs.media_error = "not an image or video (its first bytes match no supported format)"
        return obs
    obs.kind, obs.format = detected
    if obs.kind == "image" and data is None:
        obs.media_error = f"image file of {obs.size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,}"
        return obs
    try:
        _find_faces(obs, data, options)
    except MediaError as exc:
        obs.media_error = str(exc)
        obs.faces = []
    return obs


def observe_shipped(path: str, data: bytes, size: int, mtime_ns: int, options: ScanOptions = ScanOptions()) -> Observation:
    """:func:`observe` for a worker without the scanned folder: the file's bytes come with the task.

    Written to a private temporary file (OpenCV reads videos from a path) and
    observed there; the observation keeps the original path, size and time.
    """
    suffix = os.path.splitext(path)[1][:16]
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        obs = observe(handle.name, options)
    obs.path, obs.size, obs.mtime_ns = path, size, mtime_ns
    return obs


def _read_for_shipping(path: str) -> tuple[bytes, int, int] | None:
    """The bytes, size and modification time to ship, or None when this machine cannot read the file."""
    try:
        stat = os.stat(path)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            return handle.read(), stat.st_size, stat.st_mtime_ns
    except OSError:
        return None


def _find_faces(obs: Observation, data: bytes | None, options: ScanOptions) -> None:
    engine = process_engine(options.detect_max_side, min_face=options.min_face, detector=options.detector)
    started = time.perf_counter()
    if obs.kind == "image":
        frames: Iterable[Frame] = image_frames(
            data, options.max_pixels, min_side=lambda width, height: engine.detection_plan(height, width)[0],
            max_frames=options.max_image_frames,
        )
    else:
        frames = video_frames(obs.path, options.video_every_seconds, options.max_video_frames)
    for frame in frames:
        decoded = time.perf_counter()
        obs.seconds["decode"] = obs.seconds.get("decode", 0.0) + decoded - started
        rgb = np.ascontiguousarray(frame.rgb)
        boxes = engine.detect(rgb, frame.scale)
        detected = time.perf_counter()
        obs.seconds["detect"] = obs.seconds.get("detect", 0.0) + detected - decoded
        if frame.scale > 1 and any(min(b.width, b.height) < EMBED_REDUCED_MIN_FACE for b in boxes):
            # A face too small in the reduced decode for a faithful embedding:
            # decode once more at full size and embed from that.
            rgb = decode_image(data, options.max_pixels)
            boxes = [scale_box(b, frame.scale, rgb.shape) for b in boxes]
            frame = Frame(rgb, frame.time)
            obs.seconds["decode"] += time.perf_counter() - detected
            detected = time.perf_counter()
        embeddings = engine.embed(rgb, boxes)
        started = time.perf_counter()
        obs.seconds["embed"] = obs.seconds.get("embed", 0.0) + started - detected
        obs.width, obs.height = frame.original_size or (rgb.shape[1], rgb.shape[0])
        obs.faces.extend(
            ObservedFace(scale_box(box, frame.scale, (obs.height, obs.width)), vector, frame.time)
            for box, vector in zip(boxes, embeddings)
        )


def scale_box(box: Box, scale: float, shape: tuple) -> Box:
    """``box`` multiplied by ``scale``, clipped to an image of ``shape`` (height, width, ...)."""
    if scale == 1:
        return box
    height, width = shape[:2]
    return Box(
        top=max(0, round(box.top * scale)),
        right=min(width, round(box.right * scale)),
        bottom=min(height, round(box.bottom * scale)),
        left=max(0, round(box.left * scale)),
    )


def iter_files(folders: Iterable[str]) -> Iterator[str]:
    """Every file below the folders, in a stable order, without following directory links
    (so a symbolic-link loop cannot trap the walk). Hidden files are skipped."""
    for folder in folders:
        if os.path.isfile(folder):
            yield os.path.abspath(folder)
            continue
        for root, dirs, files in os.walk(os.path.abspath(folder)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield os.path.join(root, name)


class InlineExecutor(Executor):
    """Runs each task at once in this process: the one-worker case of the same code path."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like a pool would
            future.set_exception(exc)
        return future


def _start_worker() -> None:
    # Ctrl-C is handled by the scanning process, which stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker process per core: OpenCV's own threads (resizing, the face
    # proposal network) would only compete with the other workers.
    import cv2

    cv2.setNumThreads(1)


def make_executor(workers: int) -> Executor:
    if workers <= 1:
        return InlineExecutor()
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )


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
    unmatched_manifest_paths: int = 0

    @property
    def done(self) -> int:
        """Files finished so far (``files`` counts those found, some still in the workers)."""
        return self.scanned + self.copies + self.unchanged

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
            "manifest_paths_not_found": self.unmatched_manifest_paths,
        }


def scan(
    store: Store,
    policy: Policy,
    folders: list[str],
    manifest: dict[str, dict] | None = None,
    workers: int = 1,
    options: ScanOptions = ScanOptions(),
    executor: Executor | None = None,
    on_file: Callable[[ScanSummary, str, str | None], None] | None = None,
    rescan: bool = False,
    ship_bytes: bool = False,
) -> ScanSummary:
    """Scan every file below ``folders`` and record faces, matches and decisions.

    A file already recorded with the same size and modification time is not
    read again; a file whose content was scanned under another path is linked
    to that scan (so a moved file keeps its results). Once every file has been
    seen, recorded files below ``folders`` that are no longer there are dropped.
    ``rescan``: also read again the files whose unmatched embeddings were not
    kept and that were not checked against the latest enrollment.
    ``executor``: any :class:`concurrent.futures.Executor` (a Dask cluster's
    ``Client.get_executor()``, for one); ``workers`` then only bounds the
    files in flight. ``ship_bytes``: send each file's bytes with its task,
    for workers that do not share the scanned folders.
    ``on_file(summary, path, error)`` is called after each file.
    """
    manifest = manifest or {}
    summary = ScanSummary()
    started = time.perf_counter()
    refresh_stale_decisions(store, policy, DlibEngine.name)
    decider = Decider(store, policy, DlibEngine.name)
    own_executor = executor is None
    executor = executor or make_executor(workers)
    in_flight: deque[tuple[str, Future]] = deque()
    limit = max(2, 4 * max(1, workers))
    seen_manifest = 0

    scan_number = store.begin_scan()
    last_change = store.last_fact_change()
    guard = FloodGuard(store, decider, scan_number, summary)
    replacing: set[str] = set()  # files in flight for --rescan

    def collect(path: str, future: Future) -> Observation:
        try:
            return future.result()
        except (KeyboardInterrupt, SystemExit, ModelsMissing):
            raise  # a broken install stops the scan: no file is to blame
        except Exception as exc:  # the task itself failed: a worker died, on every retry
            return Observation(path=path, file_error=f"no worker could process the file ({type(exc).__name__}: {exc})")

    def finish(observation: Observation) -> None:
        replace = observation.path in replacing
        replacing.discard(observation.path)
        _record(store, decider, observation, manifest.get(observation.path), summary, scan_number, replace)
        decided = store.file_decisions(observation.path)
        _count_decision(decided.values(), summary)
        guard.check(observation, decided)
        if on_file:
            on_file(summary, text_path(observation.path), observation.error)

    try:
        for path in iter_files(folders):
            summary.files += 1
            seen_manifest += path in manifest
            try:
                stat = os.stat(path)
                unchanged = store.file_unchanged(path, stat.st_size, stat.st_mtime_ns)
            except OSError:
                unchanged = False  # the worker reports why
            if unchanged and rescan and store.files_needing_rescan(path):
                unchanged = False
                replacing.add(path)
            if unchanged:
                summary.unchanged += 1
                store.mark_seen(path, scan_number)
                if path in manifest and store.update_file_metadata(path, manifest[path]):
                    decider.redecide([store.file_sha256(path)])
                _count_decision(store.file_decisions(path).values(), summary)
                if on_file:
                    on_file(summary, text_path(path), None)
                continue
            shipped = _read_for_shipping(path) if ship_bytes else None
            if shipped is not None:
                future = executor.submit(observe_shipped, path, *shipped, options)
            else:  # also when this machine cannot read it: observe() says why
                future = executor.submit(observe, path, options)
            in_flight.append((path, future))
            while len(in_flight) >= limit or (in_flight and in_flight[0][1].done()):
                finish(collect(*in_flight.popleft()))
        while in_flight:
            finish(collect(*in_flight.popleft()))
    except KeyboardInterrupt:
        summary.interrupted = True
        for _, future in in_flight:
            future.cancel()
    finally:
        if own_executor:
            executor.shutdown(wait=not summary.interrupted, cancel_futures=True)
    if store.last_fact_change() != last_change:
        # Someone enrolled, consented, opted in or out, was erased or reviewed while
        # this scan ran on its snapshot: decide this scan's media again on the new facts.
        Decider(store, policy, DlibEngine.name).update(store.media_recorded_in_scan(scan_number))
    if not summary.interrupted:
        summary.gone = store.forget_unseen([os.path.abspath(folder) for folder in folders], scan_number)
    store.pack_face_blocks()  # so that the next enrollment's retroactive matching reads them fast
    summary.unmatched_manifest_paths = max(0, len(manifest) - seen_manifest)
    summary.elapsed = time.perf_counter() - started
    return summary


def check_upload(store: Store, policy: Policy, data: bytes, label: str, metadata: dict | None = None,
                 options: ScanOptions = ScanOptions()) -> str | None:
    """Observe uploaded bytes now and record them under ``label``, with their matches and decisions.

    Returns the reason when the upload is no usable media; then nothing is recorded.
    """
    obs = observe_shipped(label, data, len(data), time.time_ns(), options)
    if obs.error:
        return obs.error
    _record(store, Decider(store, policy, DlibEngine.name), obs, metadata, ScanSummary(), store.begin_scan())
    return None


def _record(
    store: Store,
    decider: Decider,
    obs: Observation,
    metadata: dict | None,
    summary: ScanSummary,
    scan_number: int,
    replace: bool = False,
) -> None:
    copy = obs.sha256 is not None and store.has_media(obs.sha256) and not replace
    write_started = time.perf_counter()
    if not copy and not decider.policy.keep_unmatched_embeddings:
        # No-retention: the embedding of a face that matches nobody is not stored.
        matched = decider.matched_faces([(face.frame_time, face.embedding) for face in obs.faces])
        for face, keep in zip(obs.faces, matched):
            if not keep:
                face.embedding = None
    store.record(obs, metadata, scan_number, replace=replace)
    if copy:
        decider.redecide([obs.sha256])  # its faces are matched already
    elif obs.sha256 is not None:
        decider.update([obs.sha256])
    summary.seconds["match+decide+write"] += time.perf_counter() - write_started
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


class FloodGuard:
    """Counts, per enrolled person, the media they matched in this scan; past the
    rules' limit, that person's matches of this scan are re-decided with the
    ``flood`` fact (the shipped rules send them to review)."""

    def __init__(self, store: Store, decider: Decider, scan_number: int, summary: ScanSummary):
        self.store, self.decider, self.scan_number, self.summary = store, decider, scan_number, summary
        self.limit = decider.policy.flood_limit
        self.media: dict[int, set[str]] = {}

    def check(self, obs: Observation, decided: dict[int, str]) -> None:
        if self.limit is None or obs.sha256 is None:
            return
        for person_id in decided:
            if (person_id, self.scan_number) in self.decider.floods:
                continue
            seen = self.media.setdefault(person_id, set())
            seen.add(obs.sha256)
            if len(seen) > self.limit:
                self.store.add_flood(person_id, self.scan_number, len(seen))
                self.decider.floods.add((person_id, self.scan_number))
                self.decider.redecide(self.store.media_matched_in_scan(person_id, self.scan_number))
                self.summary.floods.append(self.decider.people[person_id].name)
                del self.media[person_id]


def _count_decision(actions: Collection[str], summary: ScanSummary) -> None:
    """Count a file's matches, and the file under its most severe decision."""
    summary.matches += len(actions)
    worst = max(actions, key=SEVERITY.__getitem__, default="none")
    summary.decisions[worst] += 1
