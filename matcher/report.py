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


def media_reports(store: Store, decision: str | None = None) -> Iterator[dict]:
    """Report entries in path order; only those whose media decision is ``decision`` when given."""
    files = store.db.query(
        "SELECT f.path, f.sha256, f.status AS file_status, f.error AS file_error, f.uploader, f.context, "
        "m.kind, m.format, m.status AS media_status, m.error AS media_error, m.width, m.height "
        "FROM files f LEFT JOIN media m ON m.sha256 = f.sha256 ORDER BY f.path"
    )
    for row in files:
        faces = _faces(store, row["path"], row["sha256"]) if row["sha256"] else []
        worst = max((face["decision"] for face in faces), key=SEVERITY.__getitem__, default="none")
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
            "faces": faces,
        }


def _faces(store: Store, path: str, sha256: str) -> list[dict]:
    faces = []
    for face in store.db.query(
        "SELECT fa.id, fa.frame_time, fa.top, fa.right, fa.bottom, fa.left, m.distance, p.name, "
        "d.action, d.rule, d.reason FROM faces fa "
        "LEFT JOIN matches m ON m.face_id = fa.id "
        "LEFT JOIN people p ON p.id = m.person_id "
        "LEFT JOIN decisions d ON d.face_id = fa.id AND d.path = ? "
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
    return faces


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
    """For people: one block per file, most important first on each line."""
    count = 0
    for entry in entries:
        count += 1
        label = "ERROR" if entry["status"] == "error" else entry["decision"].upper()
        out.write(f"{label:7} {entry['path']}\n")
        if entry["error"]:
            out.write(f"        error: {entry['error']}\n")
        for face in entry["faces"]:
            at = f" at {face['frame_time']:.1f}s" if "frame_time" in face else ""
            who = face["person"] or "unknown face"
            distance = f" d={face['distance']:.3f}" if face["distance"] is not None else ""
            rule = f" [{face['rule']}]" if face["rule"] else ""
            out.write(f"        {face['decision']:6} {who}{distance} box={face['box']}{at}{rule}: {face['reason']}\n")
    if not count:
        out.write("no scanned media match\n")
    return count
