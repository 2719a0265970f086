"""How the scan does in real upload conditions, beside face_recognition's CLI.

    .venv/bin/python bench/conditions.py [--faces ../shared/faces] [--only NAME,...] [--ours-only]
                                         [--keep DIR] [--cpus N] [--scan-args "ARGS"] [--background]
                                         [--rule-background] [--tree DIR]

Enrolls six lfw10 people from two photos each; the other four lfw10 people and
the eight bbt characters are strangers (every second photo of each is scored,
the others may form the background). Then builds, from the held-out photos, one
folder per condition:

    small-45/60/90   a wide shot (1600 px) with the person's face 45, 60 or 90 px wide
    crowd            a wide shot of twelve strangers at 60-100 px around one enrolled person
    tilt-25/tilt-40  the photo turned in plane by 25 or 40 degrees (both ways), face ~150 px
    covered          the lower face (nose and mouth) covered, as by a mask or a hand
    covered-fabric   the same cover with a fabric's grain and pleats (texture of its own)
    low-light        darkened (gamma 2.2, a quarter of the light) with sensor noise
    repost           shrunk to 640 px and saved at JPEG quality 20
    motion-blur      a 9 px horizontal motion blur
    grey             black and white
    mirror           flipped left to right

Each folder also holds strangers' photos treated the same way. Every face
found is matched to the face placed there (ground truth), and the table gives,
per condition and tool: recall of the enrolled people (remove or review),
their removals without review, wrong removals (a stranger's face removed, or a
person removed as someone else), and the share of stranger faces sent to review,
and per enrolled person the stranger faces they drew (review or removal).

--background: before each condition, our scan first scans a background folder
(the strangers' other photos, none of them scored: clean, as 60 and 90 px faces
in wide shots, at JPEG 20, blurred, darkened and grey; about 280 faces, built
once) and measures each enrolled person's own thresholds against it
(`consent-matcher thresholds`), as a deployment's stored faces that matched no
one would. Scans themselves do not measure here: the strangers scored must not
set the thresholds they are scored against. The background shows the same
people as the scored strangers (the faces at hand are few) in other photos: as
on a platform, where the same people are uploaded again and again; strangers
never seen before are not measured.

--rule-background: after measuring, reviewers work the background's queue: every item in
it is a stranger, and each is ruled "not them" (`review decide --not-them`), as reviewers
on a platform would have ruled the faces the scan sent them before. A look-alike uploaded
again is then cleared by the rules' look_alike condition; one never seen before is not.

--tree DIR: run our scan from another checkout (a before/after in one corpus),
with that checkout's own data/policy.toml.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ENROLLED = ("Ariel_Sharon", "Colin_Powell", "George_W_Bush", "Hugo_Chavez", "Tony_Blair", "Gerhard_Schroeder")
CONDITIONS = ("small-45", "small-60", "small-90", "crowd", "tilt-25", "tilt-40", "covered", "low-light", "repost",
              "motion-blur", "grey", "mirror", "covered-fabric")


@dataclass
class Placed:
    """A face placed in a built image: who, and where (left, top, right, bottom)."""

    person: str | None  # None: a stranger
    box: tuple[int, int, int, int]


@dataclass
class Corpus:
    known: Path
    folders: dict[str, Path] = field(default_factory=dict)
    truth: dict[str, list[Placed]] = field(default_factory=dict)  # image path -> faces placed


def photos(faces: Path) -> tuple[dict[str, list[Path]], list[Path], list[Path]]:
    """(enrolled person -> held-out photos, strangers' photos scored, strangers' other photos for
    the background: every second photo of each stranger, so the two never share a picture)."""
    lfw = faces / "lfw10"
    people = {p.name: sorted(p.glob("*.jpg")) for p in sorted(lfw.iterdir()) if p.is_dir()}
    people.update({p.name: sorted(p.glob("*.png")) for p in sorted((faces / "bbt").iterdir())
                   if p.is_dir() and p.name != "group"})
    held_out = {name: paths[2:] for name, paths in people.items() if name in ENROLLED}
    others = [paths for name, paths in people.items() if name not in ENROLLED]
    return held_out, [p for paths in others for p in paths[0::2]], [p for paths in others for p in paths[1::2]]


_BOXES: dict[bytes, tuple[int, int, int, int]] = {}


def face_box(image: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the face of a portrait photo, found once with whole-image HOG."""
    key = image.tobytes()[:4096] + bytes(str(image.size), "ascii")
    if key not in _BOXES:
        from matcher.faces.hog import HogDetector

        boxes = HogDetector().detect(np.ascontiguousarray(np.asarray(image)))
        box = max(boxes, key=lambda b: b.width) if boxes else None
        w, h = image.size
        _BOXES[key] = (box.left, box.top, box.right, box.bottom) if box else (w // 4, h // 4, 3 * w // 4, 3 * h // 4)
    return _BOXES[key]


def backgrounds() -> list[Image.Image]:
    """Photos without faces, shipped with scikit-image."""
    import skimage.data

    names = ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "retina", "moon")
    return [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in names]


def wide_shot(background: Image.Image, size=(1600, 1200)) -> Image.Image:
    return background.resize(size, Image.Resampling.BILINEAR)


def paste_face(canvas: Image.Image, photo: Image.Image, face_width: int, at: tuple[int, int],
               box: tuple[int, int, int, int] | None = None) -> tuple[int, ...]:
    """Paste ``photo`` scaled so its face is ``face_width`` px, at ``at``; the face's box in the canvas."""
    left, top, right, bottom = box or face_box(photo)
    scale = face_width / (right - left)
    scaled = photo.resize((max(1, round(photo.width * scale)), max(1, round(photo.height * scale))),
                          Image.Resampling.LANCZOS)
    canvas.paste(scaled, at)
    return (at[0] + round(left * scale), at[1] + round(top * scale), at[0] + round(right * scale),
            at[1] + round(bottom * scale))


def _turned_box(box, size, turned_size, angle: float) -> tuple[int, int, int, int]:
    """The upright square around a face box's centre after turning the photo by ``angle`` (expand=True)."""
    left, top, right, bottom = box
    cx, cy = (left + right) / 2 - size[0] / 2, (top + bottom) / 2 - size[1] / 2
    a = np.radians(angle)
    x = cx * np.cos(a) + cy * np.sin(a) + turned_size[0] / 2
    y = -cx * np.sin(a) + cy * np.cos(a) + turned_size[1] / 2
    half = (right - left) / 2
    return round(x - half), round(y - half), round(x + half), round(y + half)


def moved_box(box, size, new_size, condition: str) -> tuple[int, int, int, int]:
    """Where the face's box is after ``degrade``: scaled with the picture, flipped with a mirror image."""
    left, top, right, bottom = box
    if condition == "mirror":
        left, right = size[0] - right, size[0] - left
    scale = new_size[0] / size[0]
    return round(left * scale), round(top * scale), round(right * scale), round(bottom * scale)


def degrade(image: Image.Image, condition: str, rng: np.random.Generator) -> Image.Image:
    """One photo in a condition that needs no composition."""
    if condition in ("covered", "covered-fabric"):
        out = image.copy()
        left, top, right, bottom = face_box(image)
        height = bottom - top
        draw = ImageDraw.Draw(out)
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        draw.rounded_rectangle((left - 4, top + int(height * 0.52), right + 4, bottom + int(height * 0.15)),
                               radius=height // 6, fill=colour)
        if condition == "covered":
            return out
        # A fabric mask: grain, and a darker fold every 12 rows (what a flat cover lacks).
        pixels = np.asarray(out).astype(np.float32)
        cover = np.all(pixels == colour, axis=2)[..., None]
        folds = ((np.arange(pixels.shape[0]) // 4) % 3 == 0)[:, None, None] * 25.0
        textured = pixels + cover * (rng.normal(0, 6, pixels.shape) - folds)
        return Image.fromarray(np.clip(textured, 0, 255).astype(np.uint8))
    if condition == "low-light":
        array = np.asarray(image, dtype=np.float32) / 255
        dark = (array ** 2.2) * 0.25 * 255 + rng.normal(0, 6, array.shape)
        return Image.fromarray(np.clip(dark, 0, 255).astype(np.uint8))
    if condition == "repost":
        import io

        side = 640 / max(image.size)
        small = image.resize((round(image.width * side), round(image.height * side)), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=20)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if condition == "motion-blur":
        import cv2

        kernel = np.zeros((9, 9), np.float32)
        kernel[4, :] = 1 / 9
        return Image.fromarray(cv2.filter2D(np.asarray(image), -1, kernel))
    if condition == "grey":
        return image.convert("L").convert("RGB")
    if condition == "mirror":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    raise ValueError(condition)


def on_phone_canvas(photo: Image.Image, background: Image.Image, face_width: int, rng: random.Random,
                    box: tuple[int, int, int, int] | None = None):
    """A 1600x1200 shot with the photo placed so its face is ``face_width`` px."""
    canvas = wide_shot(background)
    left, top, right, bottom = box or face_box(photo)
    scale = face_width / (right - left)
    span = (round(photo.width * scale), round(photo.height * scale))
    at = (rng.randrange(0, max(1, 1600 - span[0])), rng.randrange(0, max(1, 1200 - span[1])))
    return canvas, paste_face(canvas, photo, face_width, at, box)


def build(faces: Path, out: Path, only: tuple[str, ...]) -> Corpus:
    rng, nprng = random.Random(5), np.random.default_rng(5)
    held_out, strangers, _ = photos(faces)
    corpus = Corpus(known=out / "known")
    corpus.known.mkdir(parents=True)
    lfw = faces / "lfw10"
    for person in ENROLLED:
        for index, photo in enumerate(sorted((lfw / person).glob("*.jpg"))[:2]):
            shutil.copy(photo, corpus.known / f"{person}_{index}.jpg")
    scenes = backgrounds()
    load = lambda p: Image.open(p).convert("RGB")  # noqa: E731
    for condition in only:
        folder = out / condition
        folder.mkdir()
        corpus.folders[condition] = folder

        def save(image: Image.Image, name: str, placed: list[Placed]) -> None:
            path = folder / name
            image.save(path, quality=92)
            corpus.truth[str(path)] = placed

        if condition.startswith("small-") or condition.startswith("tilt-"):
            number = int(condition.split("-")[1])
            for who, paths in [*held_out.items(), (None, strangers[::3])]:
                for index, path in enumerate(paths):
                    photo = load(path)
                    if condition.startswith("small-"):
                        canvas, box = on_phone_canvas(photo, rng.choice(scenes), number, rng)
                        save(canvas, f"{who or 'stranger'}-{index:03d}.jpg", [Placed(who, box)])
                    else:
                        angle = number if index % 2 else -number
                        turned = photo.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True,
                                              fillcolor=(128, 128, 128))
                        canvas, box = on_phone_canvas(turned, rng.choice(scenes), 150, rng,
                                                      _turned_box(face_box(photo), photo.size, turned.size, angle))
                        save(canvas, f"{who or 'stranger'}-{index:03d}.jpg", [Placed(who, box)])
        elif condition == "crowd":
            pool = list(strangers)
            for who, paths in held_out.items():
                for index, path in enumerate(paths):
                    canvas = wide_shot(rng.choice(scenes), (2000, 1400))
                    placed, cells = [], [(c, r) for c in range(5) for r in range(3)]
                    rng.shuffle(cells)
                    for slot, (col, row) in enumerate(cells[:13]):
                        width = rng.randrange(60, 101)
                        at = (col * 400 + rng.randrange(0, 120), row * 460 + rng.randrange(0, 150))
                        face_of = who if slot == 0 else None
                        photo = load(path) if slot == 0 else load(rng.choice(pool))
                        placed.append(Placed(face_of, paste_face(canvas, photo, width, at)))
                    save(canvas, f"{who}-{index:03d}.jpg", placed)
        else:
            for who, paths in [*held_out.items(), (None, strangers)]:
                for index, path in enumerate(paths):
                    photo = load(path)
                    changed = degrade(photo, condition, nprng)
                    save(changed, f"{who or 'stranger'}-{index:03d}.jpg",
                         [Placed(who, moved_box(face_box(photo), photo.size, changed.size, condition))])
    return corpus


def build_background(faces: Path, out: Path) -> Path:
    """Strangers' photos as uploads show them: the background of faces that match no one."""
    folder = out / "background"
    if folder.is_dir():
        return folder
    folder.mkdir()
    rng, nprng = random.Random(11), np.random.default_rng(11)
    _, _, strangers = photos(faces)
    scenes = backgrounds()
    for index, path in enumerate(strangers):
        photo = Image.open(path).convert("RGB")
        canvas, _ = on_phone_canvas(photo, rng.choice(scenes), 60, rng)
        canvas.save(folder / f"small-{index:03d}.jpg", quality=92)
        canvas, _ = on_phone_canvas(photo, rng.choice(scenes), 90, rng)
        canvas.save(folder / f"small90-{index:03d}.jpg", quality=92)
        photo.save(folder / f"clean-{index:03d}.jpg", quality=92)
        for condition in ("repost", "motion-blur", "low-light", "grey"):
            degrade(photo, condition, nprng).save(folder / f"{condition}-{index:03d}.jpg", quality=92)
    return folder


# -- running the tools -------------------------------------------------------------------------


def run_ours(corpus: Corpus, condition: str, work: Path, cpus: int, scan_args: list[str],
             background: Path | None = None, tree: Path | None = None,
             rule_background: bool = False) -> dict[str, list[dict]]:
    """{image path: [faces: {box, person, decision}]} from our scan's report (of the condition's folder)."""
    db = work / f"{condition}{'-bg' if background else ''}.db"
    if db.exists():
        db.unlink()
    # The shipped rules, but scans do not measure own thresholds: the strangers scanned here
    # are the ones scored, and must not teach the thresholds they are scored against.
    from matcher.policy import default_policy_path

    rules = work / "rules.toml"
    shipped = (tree / "data" / "policy.toml") if tree else default_policy_path()
    rules.write_text(shipped.read_text().replace("measure_after_scans = true", "measure_after_scans = false"))
    python = [sys.executable, "-m", "matcher", "--db", str(db), "--policy", str(rules)]
    run = functools.partial(subprocess.run, cwd=tree)  # python -m finds the tree's package first
    for person in ENROLLED:
        run([*python, "enroll", person.replace("_", " "), *sorted(map(str, corpus.known.glob(f"{person}_*")))],
                       check=True, capture_output=True)
    if background is not None:
        run([*python, "scan", "--workers", str(cpus), "--quiet", *scan_args, str(background)],
                       check=True, capture_output=True)
        measured = json.loads(run([*python, "thresholds", "--json"], check=True, capture_output=True,
                                             text=True).stdout)
        print(f"{'':12} ours   background of {measured['background_faces']} faces, typical tail "
              f"{measured['typical_tail']}; own thresholds: "
              + (", ".join(f"{row['person']} {row['match']:.3f}/{row['review']:.3f}"
                           for row in measured["own_thresholds"]) or "none"), flush=True)
        if rule_background:
            # Reviewers work the background's queue first: every face in it is a stranger's.
            queue = json.loads(run([*python, "review", "list", "--json"], check=True, capture_output=True,
                                   text=True).stdout)
            ruled, kept = Counter(), 0
            for item in queue:  # an item a verdict before cleared as the same look-alike has left the queue
                decided = run([*python, "review", "decide", item["id"], "--not-them", "--reviewer", "bench"],
                              capture_output=True, text=True)
                if decided.returncode and "is a confident match" in decided.stderr:  # not-them is for possible ones
                    run([*python, "review", "decide", item["id"], "--keep", "--reviewer", "bench"], check=True,
                        capture_output=True)
                    kept += 1
                elif decided.returncode and "not waiting for review" not in decided.stderr:
                    raise RuntimeError(decided.stderr)
                ruled[item["person"]] += not decided.returncode
            print(f"{'':12} ours   background queue {len(queue)} items; reviewers ruled {sum(ruled.values())} "
                  "not them (" + ", ".join(f"{person} {count}" for person, count in ruled.most_common())
                  + f"), kept {kept} confident ones, the rest left the queue as the same look-alikes", flush=True)
    run([*python, "scan", "--workers", str(cpus), "--quiet", *scan_args, str(corpus.folders[condition])],
                   check=True, capture_output=True)
    report = json.loads(run([*python, "report", "--json"], check=True, capture_output=True, text=True).stdout)
    found = {}
    for entry in report:
        if Path(entry["path"]).parent != corpus.folders[condition].resolve():
            continue
        found[entry["path"]] = [{"box": face["box"], "person": face["person"] and face["person"].replace(" ", "_"),
                                 "decision": face["decision"]} for face in entry["faces"]]
    return found


def run_theirs(corpus: Corpus, condition: str, cpus: int) -> dict[str, list[dict]]:
    """face_recognition's CLI at tolerance 0.6, with --show-distance off: one line per face found."""
    cli = str(Path(sys.executable).with_name("face_recognition"))
    out = subprocess.run([cli, "--cpus", str(cpus), "--tolerance", "0.6", str(corpus.known),
                          str(corpus.folders[condition])], check=True, capture_output=True, text=True).stdout
    found: dict[str, list[dict]] = {}
    for line in out.splitlines():
        path, _, name = line.rpartition(",")
        found.setdefault(path, [])
        if name not in ("no_persons_found",):
            person = None if name == "unknown_person" else name.rsplit("_", 1)[0]
            found[path].append({"box": None, "person": person, "decision": "remove" if person else "none"})
    return found


def overlap(a, b) -> float:
    left, top, right, bottom = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@dataclass
class Score:
    enrolled: int = 0
    found: int = 0  # enrolled appearances flagged (remove or review) for the right person
    removed: int = 0  # of those, removed without review
    wrong_removals: int = 0
    strangers: int = 0
    strangers_to_review: int = 0
    drawn: Counter = field(default_factory=Counter)  # enrolled person -> stranger faces flagged as them
    # Faces found where no face was placed (a face in the background photo, or none at all) and
    # flagged anyway: a review or removal no placed face explains.
    elsewhere_flagged: int = 0
    elsewhere_removed: int = 0

    def row(self, with_boxes: bool = True) -> str:
        elsewhere = (f", flagged where no face was placed {self.elsewhere_flagged} ({self.elsewhere_removed} removed)"
                     if with_boxes else "")
        return (f"recall {100 * self.found / max(1, self.enrolled):5.1f} % ({self.found}/{self.enrolled}), "
                f"removed {100 * self.removed / max(1, self.found):5.1f} % of those, "
                f"wrong removals {self.wrong_removals}, strangers to review "
                f"{100 * self.strangers_to_review / max(1, self.strangers):4.1f} % "
                f"({self.strangers_to_review}/{self.strangers}){elsewhere}")


def score(corpus: Corpus, condition: str, found: dict[str, list[dict]], with_boxes: bool) -> Score:
    result = Score()
    for path, placed in corpus.truth.items():
        if Path(path).parent != corpus.folders[condition]:
            continue
        faces = list(found.get(path, []))
        for truth in placed:
            if with_boxes:
                match = max(faces, key=lambda f: overlap(_ltrb(f["box"]), truth.box), default=None)
                if match is not None and overlap(_ltrb(match["box"]), truth.box) < 0.2:
                    match = None
            else:  # face_recognition's CLI gives no boxes: a file-level judgement
                match = next((f for f in faces if f["person"] == truth.person), None) if truth.person else \
                    next((f for f in faces if f["person"] is not None), None)
            if match is not None:
                faces.remove(match)
            flagged = match is not None and match["person"] is not None and match["decision"] in ("remove", "review")
            if truth.person is None:
                result.strangers += 1
                if flagged:
                    result.drawn[match["person"]] += 1
                if flagged and match["decision"] == "remove":
                    result.wrong_removals += 1
                elif flagged:
                    result.strangers_to_review += 1
                continue
            result.enrolled += 1
            if flagged and match["person"] == truth.person:
                result.found += 1
                result.removed += match["decision"] == "remove"
            elif flagged and match["decision"] == "remove":
                result.wrong_removals += 1
        if with_boxes:
            for face in faces:  # the faces no placed face claimed
                if face["person"] is not None and face["decision"] in ("remove", "review"):
                    result.elsewhere_flagged += 1
                    result.elsewhere_removed += face["decision"] == "remove"
    return result


def _ltrb(box) -> tuple[int, int, int, int]:
    top, right, bottom, left = box
    return left, top, right, bottom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--only", default=",".join(CONDITIONS), help="Comma-separated conditions.")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, help="Build (or reuse) the corpus here and keep it.")
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--scan-args", default="", help="Extra arguments for our scan.")
    parser.add_argument("--tree", type=Path, help="Run our scan from this checkout instead (see above).")
    parser.add_argument("--background", action="store_true",
                        help="Measure own thresholds against a background of strangers first (see above).")
    parser.add_argument("--rule-background", action="store_true",
                        help="With --background: reviewers then rule every queued background item not them (see above).")
    args = parser.parse_args()
    only = tuple(c for c in args.only.split(",") if c)
    work = args.keep or Path(tempfile.mkdtemp(prefix="cm-conditions-"))
    truth_file = work / "truth.json"
    if truth_file.exists():
        saved = json.loads(truth_file.read_text())
        corpus = Corpus(known=work / "known", folders={c: work / c for c in only},
                        truth={p: [Placed(t["person"], tuple(t["box"])) for t in faces] for p, faces in saved.items()})
    else:
        started = time.monotonic()
        corpus = build(args.faces, work, only)
        truth_file.write_text(json.dumps({p: [{"person": t.person, "box": t.box} for t in faces]
                                          for p, faces in corpus.truth.items()}))
        print(f"built {len(corpus.truth)} images in {time.monotonic() - started:.0f} s", flush=True)
    background = build_background(args.faces, work) if args.background else None
    totals = {"ours": Score(), "theirs": Score()}
    for condition in only:
        ours = score(corpus, condition, run_ours(corpus, condition, work, args.cpus, args.scan_args.split(),
                                                 background, args.tree and args.tree.resolve(),
                                                 args.rule_background), True)
        print(f"{condition:12} ours   {ours.row()}", flush=True)
        if ours.drawn:
            print(f"{'':12} ours   strangers drawn: " + ", ".join(
                f"{person} {count} ({100 * count / ours.strangers:.2f} %)" for person, count in ours.drawn.most_common()),
                flush=True)
        rows = [("ours", ours)]
        if not args.ours_only:
            theirs = score(corpus, condition, run_theirs(corpus, condition, args.cpus), False)
            print(f"{'':12} theirs {theirs.row(with_boxes=False)}", flush=True)
            rows.append(("theirs", theirs))
        for name, result in rows:
            total = totals[name]
            for key in vars(total):
                setattr(total, key, getattr(total, key) + getattr(result, key))  # Counters add too
    print(f"{'all':12} ours   {totals['ours'].row()}")
    if not args.ours_only:
        print(f"{'':12} theirs {totals['theirs'].row(with_boxes=False)}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
