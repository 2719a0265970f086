"""The demo behind ``make demo``: enroll, consent, scan and report on real faces, offline.

The faces are photos that ship inside PyPI packages: scikit-image's astronaut
(Eileen Collins, NASA, public domain) and matplotlib's Grace Hopper. The demo
derives crops, a mirror image, a darker copy and a two-person composition
from them, then runs the real commands on that folder.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageEnhance


def package_photos() -> tuple[Image.Image, Image.Image]:
    """(astronaut, grace_hopper) as RGB images, from scikit-image and matplotlib."""
    try:
        import matplotlib.cbook
        import skimage.data
    except ImportError:
        sys.exit("the demo needs scikit-image and matplotlib: pip install 'consent-matcher[demo]'")
    astronaut = Image.fromarray(skimage.data.astronaut())
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = Image.open(handle).convert("RGB")
    return astronaut, hopper


def build_demo_folder(out: Path) -> dict[str, Path]:
    """Write the reference photo and the media folder; return the notable paths."""
    astronaut, hopper = package_photos()
    reference = out / "reference" / "eileen-collins.jpg"
    media = out / "media"
    for folder in (reference.parent, media / "uploads"):
        folder.mkdir(parents=True, exist_ok=True)
    # Reference: a head-and-shoulders crop, as someone would upload (face ~90 px wide).
    astronaut.crop((100, 0, 400, 300)).save(reference, quality=90)
    paths = {
        "reference": reference,
        "portrait": media / "uploads" / "astronaut-portrait.jpg",
        "mirrored": media / "uploads" / "astronaut-mirrored.jpg",
        "pair": media / "uploads" / "astronaut-and-hopper.jpg",
        "hopper": media / "uploads" / "grace-hopper.jpg",
        "news": media / "uploads" / "astronaut-press-photo.jpg",
        "broken": media / "uploads" / "broken-upload.jpg",
    }
    astronaut.save(paths["portrait"], quality=92)
    astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths["mirrored"], quality=92)
    ImageEnhance.Brightness(astronaut.crop((0, 0, 512, 400))).enhance(0.7).save(paths["news"], quality=85)
    hopper.save(paths["hopper"], quality=92)
    # Two people side by side, scaled to the same height.
    left = astronaut.crop((80, 0, 432, 420))
    right = hopper.resize((round(hopper.width * 420 / hopper.height), 420))
    pair = Image.new("RGB", (left.width + right.width, 420), "white")
    pair.paste(left, (0, 0))
    pair.paste(right, (left.width, 0))
    pair.save(paths["pair"], quality=92)
    # An upload cut short in transfer: the scan must report it and go on.
    data = paths["portrait"].read_bytes()
    paths["broken"].write_bytes(data[: len(data) // 3])
    manifest = out / "manifest.csv"
    # Upload metadata; paths are relative to the manifest's own folder.
    rows = [("portrait", "user-481", ""), ("mirrored", "user-77", ""), ("pair", "user-481", ""),
            ("hopper", "user-481", ""), ("news", "daily-news", "news")]
    manifest.write_text(
        "path,uploader,context\n"
        + "".join(f"{paths[key].relative_to(out)},{uploader},{context}\n" for key, uploader, context in rows),
        encoding="utf-8",
    )
    paths["manifest"] = manifest
    paths["media"] = media
    return paths


def run(db: Path, *args: str) -> str:
    """Run one consent-matcher command as a user would, echoing it."""
    command = ["consent-matcher", "--db", str(db), *args]
    print("\n$ " + " ".join(shlex.quote(part) for part in command), flush=True)
    result = subprocess.run([sys.executable, "-m", "matcher", *command[1:]], capture_output=True, text=True)
    print(result.stdout.rstrip())
    if result.stderr.strip():
        print(result.stderr.rstrip(), file=sys.stderr)
    if result.returncode != 0:
        sys.exit(f"demo step failed with exit status {result.returncode}")
    return result.stdout


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for the demo's media, database and report")
    out = Path(parser.parse_args(argv).out)
    shutil.rmtree(out, ignore_errors=True)
    paths = build_demo_folder(out)
    db = out / "consent.db"
    print(f"demo media written to {paths['media']} (photos shipped with scikit-image and matplotlib)")

    run(db, "enroll", "Eileen Collins", str(paths["reference"]))
    run(db, "consent", "grant", "Eileen Collins", "--media", str(paths["mirrored"]))
    run(db, "scan", "--manifest", str(paths["manifest"]), str(paths["media"]))
    run(db, "report")
    report_path = out / "report.json"
    run(db, "report", "--format", "json", "-o", str(report_path))
    html_path = out / "report.html"
    run(db, "report", "--format", "html", "-o", str(html_path))
    run(db, "review", "list")
    run(db, "audit", "verify")

    report = {Path(entry["path"]).name: entry for entry in json.loads(report_path.read_text())}
    expected = {
        "astronaut-portrait.jpg": "remove",
        "astronaut-and-hopper.jpg": "remove",
        "astronaut-mirrored.jpg": "allow",
        "astronaut-press-photo.jpg": "review",
        "grace-hopper.jpg": "none",
    }
    wrong = {name: report[name]["decision"] for name, want in expected.items() if report[name]["decision"] != want}
    if wrong or report["broken-upload.jpg"]["status"] != "error":
        sys.exit(f"demo result differs from what it shows: {wrong}")
    print(
        f"\ndemo ok: removal flagged without consent, allowed with consent, news context sent to review, "
        f"unknown face left alone, broken upload reported. Database: {db} (mode "
        f"{oct(db.stat().st_mode & 0o777)}), JSON report: {report_path}, page for reviewers: {html_path}"
    )


if __name__ == "__main__":
    main()
