"""Scan throughput against face_recognition's own CLI, on the same folder and cores.

    .venv/bin/python bench/throughput.py [--faces ../shared/faces] [--runs 3] [--cpus N] [--keep DIR]
                                         [--ours="SCAN ARGS"]... [--ours-only]

Builds a corpus from ../shared/faces/lfw10: phone-size JPEGs (4032x3024) with
one person's photo placed on a varied background at a face width of 150, 250,
400 or 700 px, a quarter of them stored sideways with an EXIF orientation tag
(as phones do), plus the original 250x250 photos. Three people are enrolled
from two photos each (not in the corpus). Then, in the same run, alternately:

- ours:  consent-matcher enroll (the three people) then consent-matcher scan
  --workers N [SCAN ARGS], once per --ours given (default: one run with no
  extra arguments)
- theirs: face_recognition --cpus N KNOWN UNKNOWN (same dlib models, HOG,
  shrinks images over 1600 px, one process per core), which encodes the
  known photos itself

and prints for each: images/s (median of the runs; both timed from the known
photos to the answers: our enrollment counts, as their encoding of the known
photos does), peak memory of the whole process tree, faces found, and recall /
precision of the enrolled people against the corpus's ground truth; then the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ENROLLED = ("Ariel_Sharon", "Colin_Powell", "Tony_Blair")
FACE_WIDTHS = (150, 250, 400, 700)
LFW_FACE = 107  # face width in an LFW photo
PHONE = (4032, 3024)


def build_corpus(faces: Path, out: Path) -> tuple[Path, Path, dict[str, str]]:
    """(known folder, unknown folder, {file name: person in it})."""
    rng = np.random.default_rng(3)
    known, unknown = out / "known", out / "unknown"
    known.mkdir(parents=True)
    unknown.mkdir()
    truth = {}
    import skimage.data  # photos without faces, shipped with scikit-image

    backgrounds = [np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))
                   for name in ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "retina", "moon")]
    number = 0
    for person_dir in sorted(p for p in (faces / "lfw10").iterdir() if p.is_dir()):
        person = person_dir.name
        photos = sorted(person_dir.glob("*.jpg"))
        if person in ENROLLED:
            for index, photo in enumerate(photos[:2]):
                shutil.copy(photo, known / f"{person}_{index}.jpg")
            photos = photos[2:]
        for photo in photos:
            number += 1
            image = Image.open(photo).convert("RGB")
            small = unknown / f"{number:03d}-small.jpg"
            image.save(small, quality=92)
            truth[small.name] = person
            width = FACE_WIDTHS[number % len(FACE_WIDTHS)]
            # A photo without faces (scikit-image's coffee, cat, rocket...), tinted, as the background.
            background = Image.fromarray(backgrounds[number % len(backgrounds)]).resize(PHONE, Image.Resampling.BILINEAR)
            background = Image.blend(background, Image.new("RGB", PHONE, tuple(rng.integers(40, 200, 3).tolist())), 0.3)
            scale = width / LFW_FACE
            placed = image.resize((round(250 * scale), round(250 * scale)), Image.Resampling.BICUBIC)
            x = int(rng.integers(0, PHONE[0] - placed.width))
            y = int(rng.integers(0, PHONE[1] - placed.height))
            background.paste(placed, (x, y))
            name = f"{number:03d}-phone-{width}px.jpg"
            if number % 4 == 0:  # stored sideways, upright by its EXIF tag
                exif = Image.Exif()
                exif[0x0112] = 6
                background.transpose(Image.Transpose.ROTATE_90).save(unknown / name, quality=90, exif=exif)
            else:
                background.save(unknown / name, quality=90)
            truth[name] = person
    return known, unknown, truth


class PeakMemory:
    """Peak resident memory of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree_rss(self) -> int:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
                rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        total, stack = 0, [self.pid]
        while stack:
            pid = stack.pop()
            total += rss.get(pid, 0)
            stack.extend(children.get(pid, []))
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def timed(command: list[str], env: dict | None = None, cwd: str | None = None) -> tuple[float, int, str]:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    memory = PeakMemory(process.pid)
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    peak = memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed with {process.returncode}")
    return seconds, peak, out


def run_ours(known: Path, unknown: Path, work: Path, cpus: int, extra: list[str]) -> tuple[float, int, dict]:
    """``extra``: scan arguments; a first ``tree=DIR`` runs the package of another checkout (before/after)."""
    env = cwd = None
    if extra and extra[0].startswith("tree="):  # python -m looks in the working folder first
        cwd = str(Path(extra[0][5:]).resolve())
        env = {**os.environ, "PYTHONPATH": cwd}
        extra = extra[1:]
    db = work / "bench.db"
    for path in work.glob("bench.db*"):
        path.unlink()
    python = [sys.executable, "-m", "matcher", "--db", str(db)]
    enrolling, enroll_peak = 0.0, 0
    for person in ENROLLED:
        took, peak, _ = timed([*python, "enroll", person, *sorted(map(str, known.glob(f"{person}_*.jpg")))], env, cwd)
        enrolling, enroll_peak = enrolling + took, max(enroll_peak, peak)
    seconds, peak, out = timed([*python, "scan", "--workers", str(cpus), "--quiet", "--json", "--profile", *extra,
                                str(unknown)], env, cwd)
    seconds, peak = seconds + enrolling, max(peak, enroll_peak)
    report = json.loads(subprocess.run([*python, "report", "--json"], check=True, capture_output=True,
                                       text=True, env=env, cwd=cwd).stdout)
    found, removed = {}, {}
    for entry in report:
        found[Path(entry["path"]).name] = {m["person"] for m in entry["matches"] if m["decision"] != "allow"}
        removed[Path(entry["path"]).name] = {m["person"] for m in entry["matches"] if m["decision"] == "remove"}
    summary = json.loads(out)
    return seconds, peak, {"found": found, "removed": removed, "profile": summary["seconds"], "faces": summary["faces"],
                           "enrolling": enrolling}


def run_theirs(known: Path, unknown: Path, cpus: int) -> tuple[float, int, dict]:
    cli = str(Path(sys.executable).with_name("face_recognition"))
    seconds, peak, out = timed([cli, "--cpus", str(cpus), str(known), str(unknown)])
    found: dict[str, set] = {}
    for line in out.splitlines():
        path, _, name = line.rpartition(",")
        person = name.rsplit("_", 1)[0] if name not in ("unknown_person", "no_persons_found") else None
        found.setdefault(Path(path).name, set())
        if person:
            found[Path(path).name].add(person)
    return seconds, peak, {"found": found}


def accuracy(found: dict[str, set], truth: dict[str, str]) -> tuple[float, float]:
    """Recall of the enrolled people's items, precision of the identifications made."""
    relevant = [name for name, person in truth.items() if person in ENROLLED]
    hits = sum(1 for name in relevant if truth[name] in found.get(name, set()))
    made = sum(len(people) for people in found.values())
    right = sum(1 for name, people in found.items() for p in people if truth.get(name) == p)
    return hits / len(relevant), (right / made if made else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keep", type=Path, help="Build the corpus here and keep it.")
    parser.add_argument("--ours-only", action="store_true")
    parser.add_argument("--ours", action="append", default=None, metavar="SCAN_ARGS",
                        help="Extra arguments for one configuration of our scan (repeatable; write --ours='--min-face 150', "
                             "with '=', and --ours= for the defaults). Starting with tree=DIR, the configuration runs "
                             "the package of the checkout at DIR: before and after a change in one run.")
    args = parser.parse_args()
    configs = args.ours or [""]
    work = args.keep or Path(tempfile.mkdtemp(prefix="cm-bench-"))
    truth_file = work / "truth.json"
    if truth_file.exists():
        known, unknown, truth = work / "known", work / "unknown", json.loads(truth_file.read_text())
    else:
        known, unknown, truth = build_corpus(args.faces, work)
        truth_file.write_text(json.dumps(truth))
    images = len(truth)
    phone = sum(1 for name in truth if "phone" in name)
    print(f"corpus: {images} images ({phone} at 4032x3024, {images - phone} at 250x250), {args.cpus} cores, "
          f"{len(ENROLLED)} people enrolled; {args.runs} runs each, alternating")
    labels = {config: "ours" + (f" {config}" if config else "") for config in configs}
    results: dict[str, list] = {label: [] for label in labels.values()} | {"theirs": []}
    for _ in range(args.runs):
        for config, label in labels.items():
            results[label].append(run_ours(known, unknown, work, args.cpus, config.split()))
        if not args.ours_only:
            results["theirs"].append(run_theirs(known, unknown, args.cpus))
    rates = {}
    for name, runs in results.items():
        if not runs:
            continue
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        recall, precision = accuracy(runs[-1][2]["found"], truth)
        rates[name] = images / seconds
        faces = f", {runs[-1][2]['faces']} faces found" if "faces" in runs[-1][2] else ""
        print(f"{name}: {images / seconds:6.2f} images/s (median {seconds:.1f} s; runs: "
              f"{', '.join(f'{r[0]:.1f}' for r in runs)}), peak memory {peak / 2**20:.0f} MiB{faces}, "
              f"recall {100 * recall:.1f} %, precision {100 * precision:.1f} %"
              + (" (remove or review)" if name != "theirs" else " (any match at 0.6)"))
        if name != "theirs":
            recall, precision = accuracy(runs[-1][2]["removed"], truth)
            print(f"        removals alone: recall {100 * recall:.1f} %, precision {100 * precision:.1f} %")
    for label in labels.values():
        profile = results[label][-1][2]["profile"]
        print(f"{label}, enrollment {results[label][-1][2]['enrolling']:.1f} s; scan time by stage (s, summed over workers): "
              + ", ".join(f"{stage} {sec:.1f}" for stage, sec in sorted(profile.items(), key=lambda kv: -kv[1])))
        if "theirs" in rates:
            print(f"{label}: {rates[label] / rates['theirs']:.2f}x face_recognition's images/s")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
