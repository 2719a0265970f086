"""Observe one file: read it, decode its pictures and find the faces in them (media -> faces).

This is what a scan's workers run, in their own processes or on a cluster:
it takes a path (or the file's bytes) and options, and returns an
:class:`~matcher.model.Observation`. It never raises for a bad file: the
reason is recorded in the observation. Nothing here touches the store.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from matcher.faces import DlibSpec, EngineSpec, process_engine
from matcher.faces.geometry import scale_box, shift_box
from matcher.faces.quality import measure
from matcher.media import (
    DEFAULT_MAX_IMAGE_FRAMES,
    DEFAULT_MAX_PIXELS,
    Frame,
    MediaError,
    WorkBudget,
    WorkLimits,
    full_size_regions,
    hash_stream,
    image_frames,
    sniff,
    video_frames,
)
from matcher.model import Box, Observation, ObservedFace

# Images are decoded from memory; a file larger than this is refused unread.
MAX_IMAGE_BYTES = 256 * 1024 * 1024

# Measured on face_recognition's high-resolution test photos: a face at least
# this many pixels wide in a JPEG decoded at 1/2 or 1/4 size embeds within
# 0.045-0.075 of its full-size embedding (about what a box shifted by a few
# pixels gives); at 60-90 px it drifts 0.08-0.15, at ~40 px 0.15-0.3.
EMBED_REDUCED_MIN_FACE = 100

# What scans use by default: HOG only around BlazeFace's proposals (see README, Throughput).
SCAN_ENGINE = DlibSpec(detector="blazeface")


@dataclass(frozen=True)
class ScanOptions:
    max_pixels: int = DEFAULT_MAX_PIXELS
    video_every_seconds: float = 1.0
    max_video_frames: int = 3600
    max_image_frames: int = DEFAULT_MAX_IMAGE_FRAMES
    engine: EngineSpec = field(default=SCAN_ENGINE)
    limits: WorkLimits = field(default=WorkLimits())  # the work one file may take (frames, time)


def observe(path: str, options: ScanOptions = ScanOptions()) -> Observation:
    """Read one file and find its faces. Never raises for a bad file: the reason is recorded."""
    obs = Observation(path=path, engine=options.engine.name)
    budget = options.limits.start()
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
        _find_faces(obs, data, options, budget)
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


def read_for_shipping(path: str) -> tuple[bytes, int, int] | None:
    """The bytes, size and modification time to ship, or None when this machine cannot read the file."""
    try:
        stat = os.stat(path)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            return handle.read(), stat.st_size, stat.st_mtime_ns
    except OSError:
        return None


# The pixels a face's embedding and quality are computed from lie within this many box
# sides of its box, on each side (dlib's chip with its padding, turned by up to 45 degrees,
# reaches about one side from the centre).
AROUND_FACE = 1.5


def _around(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """The rectangle (left, top, right, bottom) of the picture a face is embedded from."""
    pad = math.ceil(AROUND_FACE * max(box.width, box.height))
    return max(0, box.left - pad), max(0, box.top - pad), min(width, box.right + pad), min(height, box.bottom + pad)


def _find_faces(obs: Observation, data: bytes | None, options: ScanOptions, budget: WorkBudget) -> None:
    engine = process_engine(options.engine)
    started = time.perf_counter()
    if obs.kind == "image":
        frames: Iterable[Frame] = image_frames(
            data, options.max_pixels, min_side=lambda width, height: engine.decode_side(height, width),
            max_frames=options.max_image_frames, budget=budget,
        )
    else:
        frames = video_frames(obs.path, options.video_every_seconds, options.max_video_frames, options.max_pixels,
                              budget)
    for frame in frames:
        budget.check_time()
        decoded = time.perf_counter()
        obs.seconds["decode"] = obs.seconds.get("decode", 0.0) + decoded - started
        rgb = np.ascontiguousarray(frame.rgb)
        boxes = engine.detect(rgb, frame.scale)
        detected = time.perf_counter()
        obs.seconds["detect"] = obs.seconds.get("detect", 0.0) + detected - decoded
        obs.width, obs.height = frame.original_size or (rgb.shape[1], rgb.shape[0])
        originals = [scale_box(box, frame.scale, (obs.height, obs.width)) for box in boxes]
        if frame.scale > 1 and any(min(b.width, b.height) < EMBED_REDUCED_MIN_FACE for b in boxes):
            # A face too small in the reduced decode for a faithful embedding: embed the faces
            # from the picture at full size (decoded once more; only the pixels around each face
            # are converted: the same pixels, a fraction of the work).
            regions = full_size_regions(data, [_around(box, obs.width, obs.height) for box in originals],
                                        options.max_pixels)
            obs.seconds["decode"] += time.perf_counter() - detected
            detected = time.perf_counter()
            faces = [(region.rgb, shift_box(box, -region.top, -region.left), box)
                     for region, box in zip(regions, originals)]
            embeddings = [engine.embed(pixels, [box])[0] for pixels, box, _ in faces]
        else:
            faces = [(rgb, box, original) for box, original in zip(boxes, originals)]
            embeddings = engine.embed(rgb, boxes)
        started = time.perf_counter()
        obs.seconds["embed"] = obs.seconds.get("embed", 0.0) + started - detected
        for (pixels, box, original), vector in zip(faces, embeddings):
            obs.faces.append(ObservedFace(original, vector, frame.time, measure(pixels, box, original.width)))
