"""How the lower face's texture (matcher/faces/quality.py ``lower_texture``) tells a covered face.

    .venv/bin/python bench/cover_measure.py [--faces ../shared/faces] [--engine scan|hog]

On the lfw10 and bbt portraits: the measure of every face seen whole, clean and as uploads show
them (degraded as ``calibrate --bands`` degrades them), and of faces covered in several ways:
a block of one colour (bench/conditions.py's cover), a mask drawn on the 68 landmarks (light,
dark), that mask with grain (Gaussian noise of σ 2, 4, 8: fabric) and with pleats (stripes).
Only faces the detector saw whole (HOG: ``frontal``) are counted for the covers: the others are
already judged as not seen frontally. ``--engine hog`` finds faces as enrollment does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from covered_and_mirror import masked  # noqa: E402  (the landmark-drawn mask)

from matcher.calibrate import degrade  # noqa: E402
from matcher.faces import DlibSpec, process_engine  # noqa: E402
from matcher.faces.quality import COVERED_LOWER_TEXTURE, lower_texture  # noqa: E402
from matcher.observe import SCAN_ENGINE  # noqa: E402

WHOLE = ("clean", "width-40", "width-60", "jpeg-20", "blur-2", "motion-9", "dark-noise", "grey")
COVERS = ("block", "mask-light", "mask-dark", "mask-grain-2", "mask-grain-4", "mask-grain-8", "mask-pleats")


def cover(photo: np.ndarray, box, how: str, rng: np.random.Generator) -> np.ndarray:
    if how == "block":
        return degrade(photo, box, "covered", rng)
    light, dark = masked(Image.fromarray(photo), box)
    out = np.asarray(dark if how == "mask-dark" else light).astype(np.float32)
    plain = np.asarray(light).astype(np.int16) != photo.astype(np.int16)  # where the mask lies
    if how.startswith("mask-grain"):
        out += plain * rng.normal(0, float(how.rsplit("-", 1)[1]), out.shape)
    elif how == "mask-pleats":
        rows = np.arange(out.shape[0])[:, None, None]
        out -= plain * 25.0 * ((rows // 4) % 3 == 0)  # a darker fold every 12 rows
    return np.clip(out, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--engine", choices=("scan", "hog"), default="scan")
    args = parser.parse_args()
    engine = process_engine(SCAN_ENGINE if args.engine == "scan" else DlibSpec())
    rng = np.random.default_rng(5)
    measured: dict[str, list[float]] = {name: [] for name in (*WHOLE, *COVERS)}
    paths = sorted((args.faces / "lfw10").glob("*/*.jpg")) + sorted((args.faces / "bbt").glob("[!g]*/*.png"))
    for path in paths:
        photo = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
        found = engine.faces(photo)
        if not found:
            continue
        box = max(found, key=lambda f: f.box.width).box
        for name in (*WHOLE, *COVERS):
            seen = np.ascontiguousarray(degrade(photo, box, name, rng) if name in WHOLE else cover(photo, box, name, rng))
            faces = [f for f in engine.faces(seen) if f.box.frontal]
            if faces:
                texture = lower_texture(seen, max(faces, key=lambda f: f.box.width).box)
                if texture is not None:
                    measured[name].append(texture)
    print(f"{len(paths)} portraits, faces found by the {args.engine} detector and seen whole; "
          f"covered below {COVERED_LOWER_TEXTURE}")
    for name, values in measured.items():
        if not values:
            print(f"{name:14s} no face seen whole")
            continue
        v = np.array(values)
        print(f"{name:14s} {len(v):4d} faces  min {v.min():.2f}  5th pct {np.quantile(v, 0.05):.2f}  "
              f"median {np.median(v):.2f}  under {COVERED_LOWER_TEXTURE}: {int((v < COVERED_LOWER_TEXTURE).sum())} "
              f"({100 * (v < COVERED_LOWER_TEXTURE).mean():.0f} %)")


if __name__ == "__main__":
    main()
