"""The HTML report: one self-contained page for reviewers, who would rather look than read.

Each flagged file (remove or review) gets a small thumbnail, read from the
file where it still is, with every face box drawn and labelled, then the
people matched, their distance, decision, rule and reason, and the item id
for ``review decide``. Thumbnails are inlined, so the page is one file that
opens anywhere; nothing is written to the database.
"""

from __future__ import annotations

import base64
import html
import io
from typing import IO, Iterable

from matcher.media import Frame, MediaError, image_frames, sniff, video_frames

THUMBNAIL_WIDTH = 360
COLOURS = {"remove": "#c62828", "review": "#ef6c00", "allow": "#2e7d32", "none": "#757575"}

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f4f4;color:#222}
header{background:#263238;color:#fff;padding:14px 20px}header h1{font-size:20px;margin:0 0 4px}
main{padding:12px;display:grid;gap:12px;grid-template-columns:repeat(auto-fill,minmax(min(100%,380px),1fr))}
article{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0003;overflow:hidden}
article img{display:block;width:100%;height:auto;background:#ddd}
.missing{padding:40px 10px;text-align:center;background:#eee;color:#666}
.body{padding:10px 12px}.path{font-family:ui-monospace,monospace;font-size:12px;word-break:break-all;color:#555}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600;
text-transform:uppercase;margin-right:6px}
ul{padding-left:18px;margin:6px 0}li{margin:4px 0}.why{color:#444}.id{font-family:ui-monospace,monospace;font-size:12px}
.counts span{margin-right:14px}
"""


def write_html(entries: Iterable[dict], out: IO[str], item_ids: dict[tuple[str, str], str] | None = None) -> int:
    """Write the page; returns the number of flagged files shown.

    ``item_ids``: ``{(path, person): item id}`` to show the handle reviewers decide with.
    """
    item_ids = item_ids or {}
    counts = {"remove": 0, "review": 0, "allow": 0, "none": 0, "error": 0}
    cards = []
    for entry in entries:
        counts["error" if entry["status"] == "error" else entry["decision"]] += 1
        if entry["decision"] in ("remove", "review"):
            cards.append(_card(entry, item_ids))
    summary = " ".join(f"<span><b>{n}</b> {name}</span>" for name, n in counts.items())
    out.write(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>consent-matcher: {counts['remove']} to remove, {counts['review']} to review</title>"
        f"<style>{STYLE}</style></head><body><header><h1>Flagged media</h1>"
        f"<div class=counts>{summary}</div></header><main>"
        + ("".join(cards) or "<p>No media flagged for removal or review.</p>")
        + "</main></body></html>\n"
    )
    return len(cards)


def _card(entry: dict, item_ids: dict) -> str:
    shown_time = entry["matches"][0].get("frame_time") if entry["matches"] else None
    picture = thumbnail(entry["path"], entry["faces"], shown_time)
    image = (f"<img alt='{html.escape(entry['path'])}' src='data:image/jpeg;base64,{picture}'>" if picture
             else "<div class=missing>file no longer readable here: no thumbnail</div>")
    items = []
    for match in entry["matches"]:
        colour = COLOURS[match["decision"]]
        seen = ""
        if match.get("frame_times"):
            seen = " · seen at " + ", ".join(f"{t:g} s" for t in match["frame_times"][:10])
        item = item_ids.get((entry["path"], match["person"]))
        items.append(
            f"<li><span class=badge style='background:{colour}'>{html.escape(match['decision'])}</span>"
            f"<b>{html.escape(match['person'])}</b> · distance {match['distance']:.3f}{seen}"
            f"<br><span class=why>[{html.escape(match['rule'])}] {html.escape(match['reason'])}</span>"
            + (f"<br><span class=id>item {html.escape(item)}</span>" if item else "")
            + "</li>"
        )
    unknown = sum(1 for face in entry["faces"] if face["person"] is None)
    colour = COLOURS[entry["decision"]]
    return (
        f"<article>{image}<div class=body><span class=badge style='background:{colour}'>"
        f"{html.escape(entry['decision'])}</span><span class=path>{html.escape(entry['path'])}</span>"
        f"<ul>{''.join(items)}</ul>"
        + (f"<div class=why>{unknown} other face(s) match nobody enrolled</div>" if unknown else "")
        + "</div></article>"
    )


def thumbnail(path: str, faces: list[dict], frame_time: float | None) -> str | None:
    """Base64 JPEG of the file (the frame at ``frame_time`` for a video) with its face boxes, or None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
            kind = sniff(head)
            if kind is None:
                return None
            if kind[0] == "image":
                frame = next(image_frames(head + handle.read(), min_side=THUMBNAIL_WIDTH * 2))
            else:
                frame = _video_frame(path, frame_time)
    except (OSError, MediaError, StopIteration):
        return None
    if frame is None:
        return None
    return draw_faces(frame, faces)


def draw_faces(frame: Frame, faces: list[dict], width: int = THUMBNAIL_WIDTH) -> str:
    """Base64 JPEG of ``frame`` shrunk to ``width`` with the faces of its time drawn and labelled.

    Each face: ``box`` (original coordinates), ``person`` (None: unknown), ``decision``.
    """
    from PIL import Image, ImageDraw

    picture = Image.fromarray(frame.rgb)
    scale = width / picture.width  # thumbnail pixels per decoded pixel
    picture = picture.resize((width, max(1, round(picture.height * scale))))
    draw = ImageDraw.Draw(picture)
    to_thumb = scale / frame.scale  # boxes are in original coordinates
    for face in faces:
        if not _same_time(face.get("frame_time"), frame.time):
            continue  # a face of another frame
        top, right, bottom, left = (round(v * to_thumb) for v in face["box"])
        colour = COLOURS[face["decision"]]
        draw.rectangle((left, top, right, bottom), outline=colour, width=3)
        label = face["person"] or "unknown"
        draw.rectangle((left, max(0, top - 14), left + 7 * len(label) + 6, top), fill=colour)
        draw.text((left + 3, max(0, top - 13)), label, fill="white")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _same_time(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and abs(a - b) < 0.01)


def _video_frame(path: str, frame_time: float | None):
    """The frame at ``frame_time`` seconds (the first frame when None or 0)."""
    if not frame_time:
        return next(iter(video_frames(path, max_frames=1)), None)
    # Sampling every frame_time seconds lands on the very frame the scan sampled
    # (frame index = round(rate x time)), skipping the others undecoded.
    for frame in video_frames(path, every_seconds=frame_time, max_frames=2):
        if _same_time(frame.time, frame_time):
            return frame
    return None
