"""The report: one entry per scanned file, with its faces, matches and decisions.

A read model over the store, and its writers (text, JSON, CSV; HTML in :mod:`matcher.report.html`).
"""

from __future__ import annotations

import csv
import json
from typing import IO, Callable, Iterator

from matcher.model import FaceFacts
from matcher.policy import SEVERITY
from matcher.store import Store

CSV_COLUMNS = [
    "path", "sha256", "kind", "status", "error", "media_decision", "uploader", "context",
    "face", "box", "frame_time", "person", "distance", "decision", "rule", "reason",
]


def media_reports(store: Store, decision: str | None = None, paths: list[str] | None = None,
                  person_label: Callable[[int, str], str] | None = None) -> Iterator[dict]:
    """Report entries in path order; only those whose media decision is ``decision``, of ``paths``, when given.

    People are named by ``person_label(person id, name)`` (their name by default),
    in their reasons too; a reviewer's note, which may name them, is then left out.
    """
    for file in store.reports.files(paths):
        found = store.reports.faces(file.path, file.sha256) if file.sha256 else []
        faces, matches = _faces(found, person_label)
        worst = max((match["decision"] for match in matches), key=SEVERITY.__getitem__, default="none")
        if decision is not None and worst != decision:
            continue
        error = file.file_error or file.media_error
        yield {
            "path": file.path,
            "sha256": file.sha256,
            "kind": file.kind,
            "format": file.format,
            "width": file.width,
            "height": file.height,
            "status": "error" if error else "ok",
            "error": error,
            "uploader": file.uploader,
            "context": list(file.context),
            "decision": worst,
            "matches": matches,
            "faces": faces,
        }


def _faces(found: list[FaceFacts], person_label) -> tuple[list[dict], list[dict]]:
    """The file's faces (facts, each with its person's decision) and its matches: one per person."""
    faces, matches = [], {}
    for face in found:
        person, reason = face.person, face.reason
        if person_label is not None and person is not None:
            person = person_label(face.person_id, face.person)
            reason = _relabelled(reason, face.person, person, face.rule, face.action)
        entry = {
            "box": face.box.as_list(),
            "person": person,
            "distance": None if face.distance is None else round(face.distance, 4),
            "decision": face.action or "none",
            "rule": face.rule,
            "reason": reason if face.person else "matches no enrolled person",
        }
        if face.frame_time is not None:
            entry["frame_time"] = face.frame_time
        faces.append(entry)
        if face.action is None:
            continue
        match = matches.setdefault(
            person,
            {"person": person, "decision": face.action, "rule": face.rule, "reason": reason,
             "distance": None, "box": None, "faces": 0},
        )
        match["faces"] += 1
        if face.frame_time is not None:
            match.setdefault("frame_times", []).append(face.frame_time)
        if face.face_id == face.decided_on:
            match["distance"], match["box"] = entry["distance"], entry["box"]
            if face.frame_time is not None:
                match["frame_time"] = face.frame_time
    ordered = sorted(matches.values(), key=lambda m: (-SEVERITY[m["decision"]], m["person"]))
    return faces, ordered


def _relabelled(reason: str | None, name: str, label: str, rule: str | None, action: str | None) -> str | None:
    if reason is None:
        return None
    if rule == "reviewer":  # the reviewer's name and note stay inside
        return f"{action} decided by a reviewer"
    return reason.replace(name, label)


def write_json(entries: Iterator[dict], out: IO[str]) -> int:
    """A JSON list, written one entry at a time so a large report needs little memory."""
    count = 0
    out.write("[")
    for entry in entries:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(entry, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


# A cell starting with one of these is a formula to a spreadsheet (=cmd|..., +SUM(...), @...).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A CSV cell a spreadsheet shows as text: a leading formula character is escaped with an apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class _SafeWriter(csv.DictWriter):
    def writerow(self, row):
        return super().writerow({key: spreadsheet_safe(value) for key, value in row.items()})


def write_csv(entries: Iterator[dict], out: IO[str]) -> int:
    """One row per face; a file with no face (or an error) gets one row with empty face columns.

    Uploaders, context tags, names and paths come from outside: cells that a
    spreadsheet would run as a formula are written as text.
    """
    writer = _SafeWriter(out, CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for entry in entries:
        count += 1
        media = {
            "path": entry["path"], "sha256": entry["sha256"], "kind": entry["kind"], "status": entry["status"],
            "error": entry["error"], "media_decision": entry["decision"], "uploader": entry["uploader"],
            "context": ";".join(entry["context"]),
        }
        if not entry["faces"]:
            writer.writerow(media)
        for number, face in enumerate(entry["faces"], start=1):
            writer.writerow(
                {
                    **media,
                    "face": number,
                    "box": " ".join(map(str, face["box"])),
                    "frame_time": face.get("frame_time"),
                    **{key: face[key] for key in ("person", "distance", "decision", "rule", "reason")},
                }
            )
    return count


def write_text(entries: Iterator[dict], out: IO[str]) -> int:
    """For people: one block per file, one line per person matched, most important first."""
    count = 0
    for entry in entries:
        count += 1
        label = "ERROR" if entry["status"] == "error" else entry["decision"].upper()
        out.write(f"{label:7} {printable(entry['path'])}\n")
        if entry["error"]:
            out.write(f"        error: {printable(entry['error'])}\n")
        for match in entry["matches"]:
            seen = f" box={match['box']}"
            if "frame_times" in match:
                times = ", ".join(f"{t:g}s" for t in match["frame_times"][:12])
                more = f" and {len(match['frame_times']) - 12} more" if len(match["frame_times"]) > 12 else ""
                seen = f" seen at {times}{more}"
            out.write(
                f"        {match['decision']:6} {printable(match['person'])} d={match['distance']:.3f}{seen} "
                f"[{match['rule']}]: {printable(match['reason'])}\n"
            )
        unknown = sum(1 for face in entry["faces"] if face["person"] is None)
        if unknown:
            out.write(f"        {unknown} face(s) matching no enrolled person\n")
    if not count:
        out.write("no scanned media match\n")
    return count


def printable(text: str) -> str:
    """Text from outside (a path, an uploader, a reason quoting them) on one line, safe on a terminal:
    newlines, escape sequences and other control characters are shown escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
