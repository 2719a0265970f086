"""Load media: decide a file's type from its bytes and decode it into RGB arrays.

Every failure is a :class:`MediaError` whose message says, in words, what is
wrong with the file; the caller adds the file name.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import re
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

# Refuse images above this many pixels before decoding them (decompression
# bombs): 100 megapixels is larger than any phone camera's output.
DEFAULT_MAX_PIXELS = 100_000_000


class MediaError(Exception):
    """A file that cannot be used, with the reason in plain words."""


_IMAGE_MAGIC = [
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
]
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}


def sniff(head: bytes) -> tuple[str, str] | None:
    """``(kind, format)`` from a file's first bytes, or None when it is no media we read."""
    for magic, fmt in _IMAGE_MAGIC:
        if head.startswith(magic):
            return "image", fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video", "avi"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image", "heif"
        return "video", "mp4"  # isom, mp41/42, qt (mov), 3gp...
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video", "matroska"  # mkv and webm
    return None


def hash_stream(handle, head: bytes = b"") -> str:
    """SHA-256 of ``head`` followed by the rest of an open binary file, read in 1 MiB chunks."""
    digest = hashlib.sha256(head)
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


# Animated images (GIF, WebP, APNG): at most this many distinct frames are read.
DEFAULT_MAX_IMAGE_FRAMES = 100

# Memory one decoded picture may take: Pillow's decoded copy plus our RGB array
# (see decode_footprint). A 100-megapixel photo needs about 0.7 GB: it passes.
DECODE_BUDGET_BYTES = 1536 * 1024 * 1024
# Bytes a pixel takes in Pillow's decoded image, by mode (RGB is stored 4 bytes wide).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "LA": 4, "PA": 4, "La": 4}


@dataclass(frozen=True)
class WorkLimits:
    """The work one file may take, whatever its size on disk says.

    An animation's frames are counted as decoded, identical ones too (a GIF
    can repaint a large canvas a million times in a few megabytes); a video's
    frames are counted as the decoder reads them; and the whole file has a
    wall-clock budget. Past any of these the file is an error with the reason.
    """

    seconds: float | None = 600.0
    animation_frames: int = 1_000
    animation_pixels: int = 1_000_000_000
    video_frames: int = 216_000  # two hours at 30 frames a second

    def start(self, clock: Callable[[], float] = time.monotonic) -> "WorkBudget":
        return WorkBudget(self, clock)


class WorkBudget:
    """What is left of one file's :class:`WorkLimits` while it is read."""

    def __init__(self, limits: WorkLimits, clock: Callable[[], float]):
        self.limits, self.clock = limits, clock
        self.deadline = clock() + limits.seconds if limits.seconds else None
        self.frames = self.pixels = 0

    def animation_frame(self, pixels: int) -> None:
        self.frames += 1
        self.pixels += pixels
        if self.frames > self.limits.animation_frames:
            raise MediaError(f"animation has more than {self.limits.animation_frames:,} frames to decode "
                             "(the work budget of one file; identical frames count)")
        if self.pixels > self.limits.animation_pixels:
            raise MediaError(f"animation needs more than {self.limits.animation_pixels:,} pixels decoded "
                             "(the work budget of one file)")
        self.check_time()

    def video_frame(self) -> None:
        self.frames += 1
        if self.frames > self.limits.video_frames:
            raise MediaError(f"video has more than {self.limits.video_frames:,} frames to decode "
                             "(the work budget of one file)")
        if self.frames % 64 == 0:
            self.check_time()

    def check_time(self) -> None:
        if self.deadline is not None and self.clock() > self.deadline:
            raise MediaError(f"reading it took longer than {self.limits.seconds:g} s "
                             "(the work budget of one file)")


UNLIMITED = WorkLimits(seconds=None, animation_frames=10**12, animation_pixels=10**18, video_frames=10**12)


@dataclass
class Frame:
    """One decoded picture: an image, an animation frame or a sampled video frame at ``time`` seconds.

    ``scale``: original pixels per pixel of ``rgb`` (above 1 when a JPEG was
    decoded at reduced size); multiply coordinates by it to get the original's.
    """

    rgb: np.ndarray
    time: float | None = None
    scale: float = 1.0
    original_size: tuple[int, int] | None = None  # (width, height) upright, when scale != 1


def _open_image(data: bytes, max_pixels: int):
    """A Pillow image, checked against the pixel limit before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    _register_heif()
    with warnings.catch_warnings():
        # Pillow warns about (and past 2x its own limit refuses) large images;
        # our own limit below is the one that applies.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise MediaError("not a readable image (unknown or corrupt format)") from None
        except Image.DecompressionBombError as exc:
            # Pillow's own hard limit (twice its MAX_IMAGE_PIXELS), reached before ours can be checked.
            found = re.search(r"\((\d+) pixels\)", str(exc))
            pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
            raise MediaError(f"image has {pixels}, over the limit of {max_pixels:,} (possible decompression bomb)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise MediaError(f"corrupt or truncated image: {exc}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise MediaError(
            f"image has {width * height:,} pixels ({width}x{height}), "
            f"over the limit of {max_pixels:,} (possible decompression bomb)"
        )
    if decode_footprint(image) > DECODE_BUDGET_BYTES and image.format != "JPEG":
        raise MediaError(
            f"image would take {decode_footprint(image) / 2**20:,.0f} MiB to decode ({width}x{height}, "
            f"mode {image.mode}), over the budget of {DECODE_BUDGET_BYTES / 2**20:,.0f} MiB")
    return image


def decode_footprint(image) -> int:
    """Bytes decoding ``image`` takes at its peak: Pillow's decoded picture (twice when
    turned upright by its EXIF orientation) and our RGB array (3 bytes a pixel)."""
    width, height = image.size
    return width * height * (2 * _MODE_BYTES.get(image.mode, 4) + 3)


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (iPhone photos), once, on the first image decoded."""
    try:
        import pillow_heif
    except ImportError:  # HEIF files are then reported as unreadable
        return
    pillow_heif.register_heif_opener()


def _load(image) -> int:
    """Decode the image's pixels; its EXIF orientation (1: stored upright)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
        image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"corrupt or truncated image: {exc}") from None
    return orientation


def _upright(image):
    """Load the image, turned upright by its EXIF orientation (a copy only when it must turn)."""
    turn = _exif_turns().get(_load(image))
    return image if turn is None else image.transpose(turn)


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 array of an encoded image at full size, turned upright by its EXIF orientation."""
    return _to_rgb(_upright(_open_image(data, max_pixels)))


@dataclass(frozen=True)
class Region:
    """Full-size pixels of part of a picture, and where they lie in it (upright coordinates)."""

    rgb: np.ndarray
    top: int
    left: int


def full_size_regions(data: bytes, rects: list[tuple[int, int, int, int]],
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Region]:
    """The pixels of each ``(left, top, right, bottom)`` rectangle of the upright picture at full size.

    The picture is decoded once, but only these rectangles are converted and
    turned upright: for a few faces of a 12-megapixel photo that is a small
    part of :func:`decode_image`'s work and memory, with the same pixels.
    """
    image = _open_image(data, max_pixels)
    orientation = _load(image)
    turn = _exif_turns().get(orientation)
    width, height = image.size  # as stored
    regions = []
    for left, top, right, bottom in rects:
        xs, ys = zip(*(_stored_point(x, y, orientation, width, height) for x, y in ((left, top), (right, bottom))))
        part = image.crop((min(xs), min(ys), max(xs), max(ys)))
        regions.append(Region(_to_rgb(part.transpose(turn) if turn is not None else part), top, left))
    return regions


@functools.cache
def _exif_turns() -> dict:
    """What turns a picture stored with each EXIF orientation upright (as Pillow's exif_transpose does)."""
    from PIL import Image

    T = Image.Transpose
    return {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE, 6: T.ROTATE_270,
            7: T.TRANSVERSE, 8: T.ROTATE_90}


def _stored_point(x: int, y: int, orientation: int, width: int, height: int) -> tuple[int, int]:
    """Where a corner (x, y) of the upright picture lies in the picture as stored (``width`` x ``height``)."""
    return {
        2: (width - x, y), 3: (width - x, height - y), 4: (x, height - y), 5: (y, x),
        6: (y, height - x), 7: (width - y, height - x), 8: (width - y, x),
    }.get(orientation, (x, y))


def image_frames(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | Callable[[int, int], int] | None = None,
    max_frames: int = DEFAULT_MAX_IMAGE_FRAMES,
    budget: WorkBudget | None = None,
) -> Iterator[Frame]:
    """The frames of an encoded image: one for a still, each distinct frame of an animation.

    ``min_side``: a JPEG may be decoded directly at 1/2, 1/4 or 1/8 size
    (its DCT scaling, much cheaper than decoding in full then shrinking) as
    long as its longest side stays at least this many pixels (or what
    ``min_side(width, height)`` says for the image's size).
    """
    image = _open_image(data, max_pixels)
    if getattr(image, "is_animated", False) and image.format in ("GIF", "WEBP", "PNG"):
        yield from _animation_frames(image, max_frames, budget or UNLIMITED.start())
        return
    width, height = image.size
    longest = max(width, height)
    if callable(min_side):
        min_side = min_side(width, height)
    if not (min_side and image.format == "JPEG" and longest > min_side):
        yield Frame(_to_rgb(_upright(image)))
        return
    image.draft("RGB", (math.ceil(width * min_side / longest), math.ceil(height * min_side / longest)))
    scale = width / image.size[0]
    stored_width = image.size[0]
    rgb = _to_rgb(_upright(image))
    turned = rgb.shape[1] != stored_width  # EXIF orientation swapped the sides
    yield Frame(rgb, scale=scale, original_size=(height, width) if turned else (width, height))


def _animation_frames(image, max_frames: int, budget: WorkBudget) -> Iterator[Frame]:
    """Each frame that differs from the one before, with its time in seconds, up to ``max_frames``.

    Frames are read one after the other until the end (never counted first: a
    GIF's frame count is only known by reading them all), each against ``budget``.
    """
    elapsed_ms, previous, yielded = 0.0, None, 0
    for index in range(2**31):
        try:
            image.seek(index)
        except EOFError:
            return
        except (OSError, SyntaxError, ValueError) as exc:
            if yielded:
                return  # a truncated animation: keep the frames read so far
            raise MediaError(f"corrupt or truncated image: {exc}") from None
        budget.animation_frame(image.size[0] * image.size[1])
        try:
            rgb = _to_rgb(image)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if yielded:
                return
            raise MediaError(f"corrupt or truncated image: {exc}") from None
        digest = hashlib.blake2b(rgb.tobytes(), digest_size=16).digest()
        if digest != previous:
            yield Frame(rgb, time=round(elapsed_ms / 1000.0, 3))
            yielded += 1
            if yielded >= max_frames:
                return
        previous = digest
        elapsed_ms += image.info.get("duration") or 0


# Pictures are converted to RGB a strip of rows at a time, into one array: the
# peak is the decoded picture plus 3 bytes a pixel, not several full-size copies.
STRIP_ROWS = 256


def _to_rgb(image) -> np.ndarray:
    width, height = image.size
    sixteen = image.mode in ("I;16", "I;16B", "I;16L", "I")
    peak = (image.getextrema()[1] or 1) if sixteen else None
    transparent = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    rgb = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, STRIP_ROWS):
        strip = image.crop((0, top, width, min(height, top + STRIP_ROWS)))
        rgb[top:top + strip.height] = _strip_to_rgb(strip, peak, transparent)
    return rgb


def _strip_to_rgb(strip, peak: int | None, transparent: bool) -> np.ndarray:
    if peak is not None:
        # 16-bit greyscale: scaled to 8 bits instead of clipped.
        grey = (np.asarray(strip, dtype=np.uint32) * 255 // peak).astype(np.uint8)
        return grey[..., None]
    if transparent:
        # Transparent areas over white, not black: faces stay visible.
        rgba = np.asarray(strip.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[..., 3:]
        return ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if strip.mode == "RGB":
        # Pillow keeps RGB pixels as RGBX: taken as they are and packed by OpenCV, a tenth of a
        # phone photo's decode time less than Pillow packing them (the same pixels).
        import cv2

        width, height = strip.size
        return cv2.cvtColor(np.frombuffer(strip.tobytes("raw", "RGBX"), np.uint8).reshape(height, width, 4),
                            cv2.COLOR_RGBA2RGB)
    return np.asarray(strip.convert("RGB"))


def video_frames(path: str, every_seconds: float = 1.0, max_frames: int = 3600,
                 max_pixels: int = DEFAULT_MAX_PIXELS, budget: WorkBudget | None = None) -> Iterator[Frame]:
    """The first frame, then one frame every ``every_seconds`` of a video file.

    Frames larger than ``max_pixels`` are refused before any is decoded; every
    frame the decoder reads (sampled or not) counts against ``budget``.
    """
    import cv2

    budget = budget or UNLIMITED.start()

    # FFmpeg would print its own complaint about a broken file on stderr; the
    # scan reports the file's error in words itself. (Read at first capture.)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise MediaError("not a readable video (OpenCV cannot open it)")
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if width * height > max_pixels:
            raise MediaError(f"video frames have {width * height:,} pixels ({width}x{height}), "
                             f"over the limit of {max_pixels:,}")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        if not 0 < fps < 1000:
            fps = 25.0  # unknown rate: assume a common one for timestamps
        step = max(1, round(fps * every_seconds))
        index = 0
        yielded = 0
        while yielded < max_frames:
            budget.video_frame()
            ok = capture.grab()
            if not ok:
                break
            if index % step == 0:
                ok, bgr = capture.retrieve()
                if ok and bgr is not None:
                    if bgr.shape[0] * bgr.shape[1] > max_pixels:  # the header said less than the stream has
                        raise MediaError(f"video frames have {bgr.shape[0] * bgr.shape[1]:,} pixels, over the "
                                         f"limit of {max_pixels:,}")
                    yielded += 1
                    yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time=round(index / fps, 3))
            index += 1
        if yielded == 0:
            raise MediaError("video has no decodable frame (corrupt or unsupported codec)")
    finally:
        capture.release()
