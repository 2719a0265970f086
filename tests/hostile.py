"""Hostile media, made on the fly: small files that cost a naive decoder a lot of time or memory."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import write_video

# One 1x1 frame, pixel 0: graphic control (0.1 s), image descriptor, LZW data (clear, 0, end).
_GIF_FRAME = (b"\x21\xf9\x04\x00\x0a\x00\x00\x00" + b"\x2c" + struct.pack("<4H", 0, 0, 1, 1) + b"\x00"
              + b"\x02\x02\x44\x01\x00")


def gif_of_tiny_frames(frames: int, canvas: tuple[int, int] = (2000, 2000)) -> bytes:
    """A GIF whose ``frames`` identical 1x1 frames each repaint a large canvas (23 bytes a frame)."""
    width, height = canvas
    header = b"GIF89a" + struct.pack("<2H", width, height) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    return header + _GIF_FRAME * frames + b"\x3b"


def webp_of_many_frames(frames: int, size: tuple[int, int] = (400, 400)) -> bytes:
    """An animated WebP of ``frames`` frames, each a one-pixel change of the last (kept, not merged)."""
    pictures = []
    for index in range(frames):
        picture = Image.new("RGB", size, (90, 90, 90))
        picture.putpixel((index % size[0], 0), (index % 256, 0, 0))
        pictures.append(picture)
    out = io.BytesIO()
    pictures[0].save(out, "WEBP", save_all=True, append_images=pictures[1:], duration=10, quality=10)
    return out.getvalue()


def grey_video(path: Path, frames: int, fps: float, size: tuple[int, int], fourcc: str = "mp4v") -> Path:
    """A video of ``frames`` identical grey frames (one array, repeated: no memory per frame)."""
    return write_video(path, fourcc, [np.full((size[1], size[0], 3), 60, np.uint8)] * frames, fps)


def png(mode: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()
