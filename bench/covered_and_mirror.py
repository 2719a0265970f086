"""A covered lower face, and averaging with the mirror image: how far embeddings move.

    .venv/bin/python bench/covered_and_mirror.py [--faces ../shared/faces]

On every lfw10 photo (its face found by the scan's engine):

- covered: nose and mouth covered as bench/conditions.py covers them; how many
  covered faces the scan finds, how far the embedding moves from the same photo
  uncovered (embedded with the uncovered face's box), and the true / false
  accepts of covered faces against every clean photo but their own;
- masked references: the clean photos covered by a mask drawn from their own 68 landmarks
  (jaw to nose bridge, light and dark: another cover than the probes'), as an enrollment
  could add for covered faces; covered probes against those, and against both;
- mirror: for probes degraded as `calibrate --bands` degrades them (JPEG 20,
  blur, dark with noise, 60 px), the same rates plain, with the probe averaged
  with its mirror image's embedding, and with the references averaged too.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).parent))
import conditions  # noqa: E402  (bench/conditions.py: the same cover)

from matcher.calibrate import degrade  # noqa: E402
from matcher.faces import process_engine  # noqa: E402
from matcher.observe import SCAN_ENGINE  # noqa: E402

PROBES = ("jpeg-20", "blur-2", "dark-noise", "width-60")
MASK_COLOURS = ((215, 225, 235), (35, 35, 40))


def masked(image: Image.Image, box) -> list[Image.Image]:
    """The photo with a mask over nose and mouth, drawn from the face's own 68 landmarks."""
    from matcher.faces.landmarks import shape_predictor

    dlib, predictor = shape_predictor("shape_predictor_68_face_landmarks.dat")
    shape = predictor(np.asarray(image), dlib.rectangle(box.left, box.top, box.right, box.bottom))
    outline = [(shape.part(i).x, shape.part(i).y) for i in (*range(1, 16), 28)]  # the jaw, then the nose bridge
    covered = []
    for colour in MASK_COLOURS:
        out = image.copy()
        ImageDraw.Draw(out).polygon(outline, fill=colour)
        covered.append(out)
    return covered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    args = parser.parse_args()
    engine = process_engine(SCAN_ENGINE)
    rng = np.random.default_rng(3)

    def largest(rgb):
        found = engine.faces(np.ascontiguousarray(rgb))
        return max(found, key=lambda f: f.box.width) if found else None

    owner, clean, clean_mirror, covered_found, covered_boxed, masks, covered_mirror = {}, {}, {}, {}, {}, {}, {}
    probes: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {name: {} for name in PROBES}
    for folder in sorted(p for p in (args.faces / "lfw10").iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.jpg")):
            image = Image.open(path).convert("RGB")
            rgb = np.asarray(image)
            face = largest(rgb)
            if face is None:
                continue
            key = str(path)
            owner[key], clean[key] = folder.name, face.embedding
            mirrored = largest(rgb[:, ::-1])
            clean_mirror[key] = mirrored.embedding if mirrored else face.embedding
            masks[key] = [engine.embed(np.ascontiguousarray(np.asarray(m)), [face.box])[0] for m in masked(image, face.box)]
            cover = np.ascontiguousarray(conditions.degrade(image, "covered", rng))
            found = largest(cover)
            if found is not None:
                covered_found[key] = found.embedding
                mirrored_box = replace(found.box, left=cover.shape[1] - found.box.right, right=cover.shape[1] - found.box.left)
                covered_mirror[key] = (found.embedding + engine.embed(np.ascontiguousarray(cover[:, ::-1]),
                                                                      [mirrored_box])[0]) / 2
            covered_boxed[key] = engine.embed(cover, [face.box])[0]
            for name in PROBES:
                seen = np.ascontiguousarray(degrade(rgb, face.box, name, rng))
                probe = largest(seen)
                if probe is not None:
                    mirror = largest(seen[:, ::-1])
                    probes[name][key] = (probe.embedding, mirror.embedding if mirror else probe.embedding)

    photos = list(clean)

    def rates(title: str, embeddings: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> None:
        """Per pair of photos (a photo's references: one embedding, or several, the nearest counts)."""
        matrix = np.stack([np.reshape(references[p], (-1, engine.dim)) for p in photos])
        same, different = [], []
        for photo, embedding in embeddings.items():
            for other, distance in zip(photos, np.linalg.norm(matrix - embedding, axis=2).min(axis=1)):
                if other != photo:
                    (same if owner[other] == owner[photo] else different).append(distance)
        same, different = np.array(same), np.array(different)
        print(f"{title:30s} {len(embeddings):3d} faces  same-person median {np.median(same):.3f}, "
              f"within 0.55 {100 * (same <= 0.55).mean():5.1f} %, within 0.62 {100 * (same <= 0.62).mean():5.1f} %; "
              f"strangers within 0.55: {int((different <= 0.55).sum())}, within 0.62: {int((different <= 0.62).sum())} "
              f"of {len(different)}, closest {different.min():.3f}")

    rates("clean", clean, clean)
    rates("covered, found by the scan", covered_found, clean)
    rates("covered, the uncovered box", covered_boxed, clean)
    rates("covered, masked references", covered_found, {p: np.stack(masks[p]) for p in photos})
    rates("covered, both references", covered_found, {p: np.stack([clean[p], *masks[p]]) for p in photos})

    def per_person(title: str, embeddings: dict[str, np.ndarray], references: dict[str, np.ndarray]) -> None:
        """As a scan compares: each probe with each person's nearest other photo; the share of probes
        found at the distance where 0.1 % / 1 % of (probe, other person) comparisons are accepted."""
        same, different = [], []
        for photo, embedding in embeddings.items():
            nearest: dict[str, float] = {}
            for other in photos:
                if other != photo:
                    distance = float(np.linalg.norm(np.reshape(references[other], (-1, engine.dim)) - embedding, axis=1).min())
                    nearest[owner[other]] = min(nearest.get(owner[other], 2.0), distance)
            for person, distance in nearest.items():
                (same if person == owner[photo] else different).append(distance)
        same, different = np.array(same), np.array(different)
        found = [f"at FAR {100 * far:g} % ({np.quantile(different, far):.3f}) {100 * (same <= np.quantile(different, far)).mean():5.1f} %"
                 for far in (0.001, 0.01)]
        print(f"{title:40s} per person: found {', '.join(found)}")

    per_person("covered, clean references", covered_found, clean)
    per_person("covered, masked references", covered_found, {p: np.stack(masks[p]) for p in photos})
    per_person("covered + mirror, clean references", covered_mirror, clean)
    moved = [float(np.linalg.norm(covered_boxed[p] - clean[p])) for p in photos]
    print(f"covered: moved from the same photo uncovered: median {np.median(moved):.3f}, "
          f"90th percentile {np.quantile(moved, 0.9):.3f}, max {max(moved):.3f}")
    averaged = {p: (clean[p] + clean_mirror[p]) / 2 for p in photos}
    for name, pairs in probes.items():
        rates(name, {p: e for p, (e, _) in pairs.items()}, clean)
        rates(f"{name}, probe + mirror", {p: (e + m) / 2 for p, (e, m) in pairs.items()}, clean)
        rates(f"{name}, both + mirror", {p: (e + m) / 2 for p, (e, m) in pairs.items()}, averaged)


if __name__ == "__main__":
    main()
