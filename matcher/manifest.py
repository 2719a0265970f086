"""Upload metadata for a scan: a CSV or JSON Lines file with ``path``, ``uploader``, ``context``.

Relative paths are taken relative to the manifest's own folder. ``context``
holds tags such as ``news``, ``public_interest``, ``crisis``: in CSV separated
by ``;``, ``,`` or spaces, in JSON Lines a list or such a string.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re

from matcher.model import Upload


class ManifestError(ValueError):
    pass


def _tags(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        if not all(isinstance(tag, str) for tag in value):
            raise ValueError("context tags must be strings")
        return sorted({tag.strip() for tag in value if tag.strip()})
    if isinstance(value, str):
        return sorted({tag for tag in re.split(r"[;,\s]+", value) if tag})
    raise ValueError("context must be a list of tags or a string")


def load_manifest(path: str) -> dict[str, Upload]:
    """Map each absolute media path to what the manifest says of its upload."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: the manifest is not UTF-8 text") from None
    first = text.lstrip()[:1]
    entries: dict[str, Upload] = {}
    if first == "{":
        rows = _json_lines(text, path)
    else:
        rows = _csv_rows(text, path)
    for line, row in rows:
        where = f"{path}:{line}"
        media = row.get("path")
        if not isinstance(media, str) or not media.strip():
            raise ManifestError(f"{where}: missing 'path'")
        uploader = row.get("uploader")
        if uploader is not None and not isinstance(uploader, str):
            raise ManifestError(f"{where}: 'uploader' must be a string")
        try:
            context = _tags(row.get("context"))
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        absolute = os.path.abspath(os.path.join(base, os.path.expanduser(media.strip())))
        entries[absolute] = Upload.of((uploader or "").strip() or None, context)
    return entries


def _json_lines(text: str, path: str):
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{path}:{number}: each line must be a JSON object")
        yield number, row


def _csv_rows(text: str, path: str):
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "path" not in [name.strip() for name in reader.fieldnames]:
        raise ManifestError(f"{path}:1: a CSV manifest needs a header row with a 'path' column")
    for row in reader:
        yield reader.line_num, {key.strip(): value for key, value in row.items() if key}
