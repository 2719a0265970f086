"""Where the enrollment quality gate's limits sit on real photos, and what blur does to them.

    .venv/bin/python bench/quality_gate.py [../shared/faces]

For every photo of ../shared/faces that shows exactly one face (lfw10, the
bbt crops, face_recognition's examples), the face's width and sharpness (the
measure the gate uses: variance of the Laplacian of the face at 150 px):
how many fall under the limits. Then Gaussian blurs of sigma 1.5, 2 and 3 on
the lfw10 and bbt faces (median sharpness, how many would be refused, how far
the embedding moves) and on the demo's reference photo (scikit-image's
astronaut), which the test suite enrolls blurred.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from matcher.faces import DlibSpec, process_engine
from matcher.faces.quality import sharpness
from matcher.references import MIN_FACE_WIDTH, MIN_SHARPNESS

SIGMAS = (1.5, 2.0, 3.0)


def single_faces(folder: Path) -> list[Path]:
    photos = sorted(folder.glob("lfw10/*/*.jpg")) + sorted(folder.glob("bbt/*/*.png"))
    photos += sorted(p for p in folder.glob("face_recognition_peer/**/*") if p.suffix.lower() in (".jpg", ".png"))
    return [p for p in photos if p.parent.name != "group"]


def main(folder: Path) -> None:
    engine = process_engine(DlibSpec())
    widths, scores, labelled = [], [], []
    for path in single_faces(folder):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        faces = engine.faces(rgb)
        if len(faces) != 1:
            continue
        widths.append(faces[0].box.width)
        scores.append(sharpness(rgb, faces[0].box))
        if "face_recognition_peer" not in path.parts:
            labelled.append((rgb, faces[0]))
    scores_array = np.array(scores)
    print(f"{len(scores)} single-face photos: sharpness min {scores_array.min():.1f}, "
          f"5th percentile {np.percentile(scores_array, 5):.1f}, median {np.median(scores_array):.1f}; "
          f"{int((scores_array < MIN_SHARPNESS).sum())} under the limit of {MIN_SHARPNESS:g}, "
          f"{sum(w < MIN_FACE_WIDTH for w in widths)} narrower than {MIN_FACE_WIDTH} px")
    for sigma in SIGMAS:
        blurred_scores, drifts = [], []
        for rgb, face in labelled:
            blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(sigma)))
            blurred_scores.append(sharpness(blurred, face.box))
            drifts.append(float(np.linalg.norm(engine.embed(blurred, [face.box])[0] - face.embedding)))
        refused = sum(score < MIN_SHARPNESS for score in blurred_scores)
        print(f"blur sigma {sigma:g} on {len(labelled)} lfw10/bbt faces: median sharpness "
              f"{np.median(blurred_scores):.1f}, {refused} refused ({100 * refused / len(labelled):.0f} %), "
              f"embedding moved by {np.median(drifts):.3f} (median)")
    from matcher.demo import package_photos

    astronaut, _ = package_photos()
    reference = astronaut.crop((100, 0, 400, 300))  # the demo's reference photo
    face = engine.faces(np.asarray(reference))[0]
    for sigma in (0.0, *SIGMAS):
        blurred = np.asarray(reference.filter(ImageFilter.GaussianBlur(sigma)) if sigma else reference)
        score = sharpness(blurred, face.box)
        print(f"demo reference (face {face.box.width} px), blur sigma {sigma:g}: sharpness {score:.1f}, "
              f"{'refused' if score < MIN_SHARPNESS else 'accepted'}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/faces"))
