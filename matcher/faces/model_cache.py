"""Models converted once per machine and kept, so that each command does not convert them again.

Measured on a 2-core machine: dlib decodes its HOG face detector from text in
~0.6 s, and building our ONNX model of dlib's ResNet takes ~0.3 s; an
enrollment of two photos takes less than both. Each is built on first use and
written to the user's cache folder (``$XDG_CACHE_HOME/consent-matcher``, else
``~/.cache/consent-matcher``; ``CONSENT_MATCHER_CACHE`` names another, ``off``
turns it off), private to the user. The files hold public models only, never
anything of a person.

A file's name carries a key of everything it is built from (the source model
file, the converting code, the library's version): a change of any builds a
new one. Its content is checked against the digest written beside it on every
read: a damaged file is built again, never used.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
from pathlib import Path
from typing import Callable

DIGEST_SUFFIX = ".sha256"


def cache_folder(environ=os.environ) -> Path | None:
    """Where converted models are kept, or None where caching is off."""
    chosen = environ.get("CONSENT_MATCHER_CACHE")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "consent-matcher"


def key_of(*parts: str | bytes | Path) -> str:
    """A short key naming what a converted file is built from: strings, bytes, and files (by
    path, size and modification time: a model file replaced in place gives a new key)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            stat = part.stat()
            part = f"{part.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def source_key(*converters) -> bytes:
    """The source code of the modules of the functions that convert a model: a change to them converts again."""
    return b"".join(Path(inspect.getsourcefile(converter)).read_bytes() for converter in converters)


def cached_file(name: str, key: str, write: Callable[[Path], None], folder: Path | None = None) -> Path | None:
    """The path of a converted file, written by ``write(path)`` on first use; None where no cache
    can be kept (turned off, or the folder cannot be written): the caller then builds in memory."""
    path = _path(name, key, folder)
    if path is None:
        return None
    if _kept(path) is None:
        try:
            _keep(path, write)
        except OSError:
            return None
    return path


def cached_bytes(name: str, key: str, build: Callable[[], bytes], folder: Path | None = None) -> bytes:
    """``build()``'s bytes, from the cache when they are there (and intact), else built and kept."""
    path = _path(name, key, folder)
    kept = None if path is None else _kept(path)
    if kept is not None:
        return kept
    data = build()
    if path is not None:
        try:
            _keep(path, lambda temporary: temporary.write_bytes(data))
        except OSError:
            pass  # not kept: built again next time
    return data


def _path(name: str, key: str, folder: Path | None) -> Path | None:
    folder = cache_folder() if folder is None else folder
    return None if folder is None else folder / f"{name}-{key}"


def _kept(path: Path) -> bytes | None:
    """The kept file's bytes, where it is there and matches the digest beside it (one read)."""
    try:
        data = path.read_bytes()
        expected = path.with_name(path.name + DIGEST_SUFFIX).read_text().strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == expected else None


def _keep(path: Path, write: Callable[[Path], None]) -> None:
    """Write the file (``write(temporary path)``) and its digest, in a private folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_with_digest(temporary: Path) -> None:
        write(temporary)
        digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
        # The digest first, then the file: a reader finds a file beside its own digest, or
        # beside another file's (and builds it again), never a file taken for intact wrongly.
        _replace_whole(path.with_name(path.name + DIGEST_SUFFIX), lambda digest_file: digest_file.write_text(digest))

    _replace_whole(path, write_with_digest)


def _replace_whole(path: Path, write: Callable[[Path], None]) -> None:
    """``write`` a private temporary file beside ``path``, then move it over ``path`` at once:
    readers (concurrent workers) find the old file or the new one, whole."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
