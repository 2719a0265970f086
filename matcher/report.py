"""The report: one entry per scanned file, with its faces, matches and decisions."""

from __future__ import annotations

import csv
import json
from typing import IO, Iterator

from matcher.policy import SEVERITY
from matcher.store import Store

CSV_COLUMNS = [
    "path", "sha256", "kind", "status", "error", "media_decision", "uploader", "context",
    "face", "box", "frame_time", "person", "distance", "decision", "rule", "reason",
]


def media_reports(store: Store, decision: str | None = None, paths: list[str] | None = None) -> Iterator[dict]:
    """Report entries in path order; only those whose media decision is ``decision``, of ``paths``, when given."""
    where, params = "", []
    if paths is not None:
        where, params = f"WHERE f.path IN ({', '.join('?' * len(paths))})", list(paths)
    files = store.db.query(
        "SELECT f.path, f.sha256, f.status AS file_status, f.error AS file_error, f.uploader, f.context, "
        "m.kind, m.format, m.status AS media_status, m.error AS media_error, m.width, m.height "
        f"FROM files f LEFT JOIN media m ON m.sha256 = f.sha256 {where} ORDER BY f.path",
        params,
    )
    for row in files:
        faces, matches = _faces(store, row["path"], row["sha256"]) if row["sha256"] else ([], [])
        worst = max((match["decision"] for match in matches), key=SEVERITY.__getitem__, default="none")
        if decision is not None and worst != decision:
            continue
        error = row["file_error"] or row["media_error"]
        yield {
            "path": row["path"],
            "sha256": row["sha256"],
            "kind": row["kind"],
            "format": row["format"],
            "width": row["width"],
            "height": row["height"],
            "status": "error" if error else "ok",
            "error": error,
            "uploader": row["uploader"],
            "context": json.loads(row["context"] or "[]"),
            "decision": worst,
            "matches": matches,
            "faces": faces,
        }


def _faces(store: Store, path: str, sha256: str) -> tuple[list[dict], list[dict]]:
    """The file's faces (facts, each with its person's decision) and its matches: one per person."""
    faces, matches = [], {}
    for face in store.db.query(
        "SELECT fa.id, fa.frame_time, fa.top, fa.right, fa.bottom, fa.left, m.distance, p.name, "
        "d.face_id AS decided_on, d.action, d.rule, d.reason FROM faces fa "
        "LEFT JOIN matches m ON m.face_id = fa.id "
        "LEFT JOIN people p ON p.id = m.person_id "
        "LEFT JOIN decisions d ON d.path = ? AND d.person_id = m.person_id "
        "WHERE fa.sha256 = ? ORDER BY fa.frame_time, fa.seq",
        [path, sha256],
    ):
        entry = {
            "box": [face["top"], face["right"], face["bottom"], face["left"]],
            "person": face["name"],
            "distance": None if face["distance"] is None else round(face["distance"], 4),
            "decision": face["action"] or "none",
            "rule": face["rule"],
            "reason": face["reason"] if face["name"] else "matches no enrolled person",
        }
        if face["frame_time"] is not None:
            entry["frame_time"] = face["frame_time"]
        faces.append(entry)
        if face["action"] is None:
            continue
        match = matches.setdefault(
            face["name"],
            {"person": face["name"], "decision": face["action"], "rule": face["rule"], "reason": face["reason"],
             "distance": None, "box": None, "faces": 0},
        )
        match["faces"] += 1
        if face["frame_time"] is not None:
            match.setdefault("frame_times", []).append(face["frame_time"])
        if face["id"] == face["decided_on"]:
            match["distance"], match["box"] = entry["distance"], entry["box"]
            if face["frame_time"] is not None:
                match["frame_time"] = face["frame_time"]
    ordered = sorted(matches.values(), key=lambda m: (-SEVERITY[m["decision"]], m["person"]))
    return faces, ordered


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


def write_csv(entries: Iterator[dict], out: IO[str]) -> int:
    """One row per face; a file with no face (or an error) gets one row with empty face columns."""
    writer = csv.DictWriter(out, CSV_COLUMNS)
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
            out.write(f"        error: {entry['error']}\n")
        for match in entry["matches"]:
            seen = f" box={match['box']}"
            if "frame_times" in match:
                times = ", ".join(f"{t:g}s" for t in match["frame_times"][:12])
                more = f" and {len(match['frame_times']) - 12} more" if len(match["frame_times"]) > 12 else ""
                seen = f" seen at {times}{more}"
            out.write(
                f"        {match['decision']:6} {match['person']} d={match['distance']:.3f}{seen} "
                f"[{match['rule']}]: {match['reason']}\n"
            )
        unknown = sum(1 for face in entry["faces"] if face["person"] is None)
        if unknown:
            out.write(f"        {unknown} face(s) matching no enrolled person\n")
    if not count:
        out.write("no scanned media match\n")
    return count


def printable(path: str) -> str:
    """A path on one line: newlines and other control characters escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in path)
