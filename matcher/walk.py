"""The folder walk of a scan: every file below the folders given, in a stable order."""

from __future__ import annotations

import os
from typing import Iterable, Iterator


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
