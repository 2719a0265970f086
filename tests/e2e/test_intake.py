"""Media intake: every common format, sideways photos, videos, large images, hostile files.

The corpus is built here from the photos shipped in scikit-image and
matplotlib (Eileen Collins, enrolled; Grace Hopper, not), and scanned with
the real models.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from helpers import on_canvas, write_video

EILEEN = "Eileen Collins"

# Pillow's exif_transpose turns a stored image upright with these; saving the
# inverse with the tag gives what a phone writes.
TO_STORED = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def sideways(image: Image.Image, path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.transpose(TO_STORED[orientation]).save(path, exif=exif, quality=92)


@pytest.fixture(scope="module")
def photos(demo_folder):
    return {
        "portrait": Image.open(demo_folder["portrait"]).convert("RGB"),
        "pair": Image.open(demo_folder["pair"]).convert("RGB"),
        "hopper": Image.open(demo_folder["hopper"]).convert("RGB"),
    }


def test_formats_rotations_videos_and_large_images(cli, demo_folder, photos, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif reads HEIC")
    pillow_heif.register_heif_opener()
    media = tmp_path / "media"
    media.mkdir()
    portrait, pair = photos["portrait"], photos["pair"]
    expected = {}  # file name -> media decision

    # Still images in every format, named without (or with a wrong) extension: bytes decide.
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "HEIF"):
        portrait.save(media / f"portrait-{fmt.lower()}.bin", format=fmt)
        expected[f"portrait-{fmt.lower()}.bin"] = "remove"
    portrait.convert("RGBA").save(media / "rgba.png")
    portrait.convert("P", palette=Image.Palette.ADAPTIVE).save(media / "palette.png")
    Image.fromarray((np.asarray(portrait.convert("L"), dtype=np.uint16) * 257)).save(media / "grey16.png")
    expected |= {"rgba.png": "remove", "palette.png": "remove", "grey16.png": "remove"}
    photos["hopper"].save(media / "hopper.heic", format="HEIF")
    expected["hopper.heic"] = "none"

    # Phone photos stored sideways with an EXIF orientation tag.
    for orientation in TO_STORED:
        sideways(portrait, media / f"exif-{orientation}.jpg", orientation)
        expected[f"exif-{orientation}.jpg"] = "remove"

    # Animated GIF: face, blank, face again (0.5 s each), and an animation that never shows her.
    blank = Image.new("RGB", portrait.size, (128, 128, 128))
    portrait.save(media / "animated.gif", save_all=True, append_images=[blank, portrait.rotate(3)], duration=500,
                  loop=0)
    photos["hopper"].save(media / "hopper.gif", save_all=True, append_images=[blank], duration=500)
    expected |= {"animated.gif": "remove", "hopper.gif": "none"}

    # Videos: the two-person picture for 0.5 s, black until 1.5 s, then again until 3 s (10 fps).
    frame = np.asarray(pair)
    frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
    frames = [frame] * 5 + [np.zeros_like(frame)] * 10 + [frame] * 15
    for name, fourcc in (("clip.mp4", "mp4v"), ("clip.mov", "mp4v"), ("clip.mkv", "XVID"), ("clip.avi", "MJPG"),
                         ("clip.webm", "VP80")):
        write_video(media / name, fourcc, frames)
        expected[name] = "remove"

    # Large phone-size JPEGs: a big face (embedded from the 1/2-size decode), a small
    # face (re-decoded in full for its embedding), and a sideways one.
    on_canvas(portrait, 1400, (2300, 900)).save(media / "large-big-face.jpg", quality=90)
    on_canvas(portrait, 420, (700, 2000)).save(media / "large-small-face.jpg", quality=90)
    sideways(on_canvas(portrait, 1400, (300, 200)), media / "large-sideways.jpg", 8)
    expected |= dict.fromkeys(["large-big-face.jpg", "large-small-face.jpg", "large-sideways.jpg"], "remove")

    # Enrolled from a sideways phone photo: orientation matters for references too.
    reference = tmp_path / "reference.jpg"
    sideways(Image.open(demo_folder["reference"]).convert("RGB"), reference, 6)
    cli("enroll", EILEEN, reference)
    summary = json.loads(cli("scan", media, "--json").stdout)
    report = cli.report()
    assert summary["errors"] == 0, summary["error_files"]
    assert {name: report[name]["decision"] for name in expected} == expected
    assert len(report) == len(expected)
    assert report["portrait-heif.bin"]["format"] == "heif"

    # One match per person per video or animation, with the times she is seen.
    for name in ("clip.mp4", "clip.mov", "clip.mkv", "clip.avi", "clip.webm"):
        entry = report[name]
        assert entry["kind"] == "video", name
        [match] = entry["matches"]
        assert (match["person"], match["frame_times"]) == (EILEEN, [0.0, 2.0]), name
        assert sorted(f["frame_time"] for f in entry["faces"]) == [0.0, 0.0, 2.0, 2.0], name  # and Hopper's
    [match] = report["animated.gif"]["matches"]
    assert match["frame_times"] == [0.0, 1.0]

    # Boxes in the original's coordinates, inside the pasted picture (face ~ its middle third).
    def box_inside(entry, left, top, right, bottom):
        [face] = [f for f in entry["faces"] if f["person"] == EILEEN]
        t, r, b, l = face["box"]
        assert left <= l < r <= right and top <= t < b <= bottom, face["box"]
        return r - l

    big = report["large-big-face.jpg"]
    assert (big["width"], big["height"]) == (4032, 3024)
    assert box_inside(big, 2300, 900, 3700, 2300) > 200  # ~110 px in the 1/2-size decode
    assert box_inside(report["large-small-face.jpg"], 700, 2000, 1120, 2420) < 100  # re-decoded in full
    turned = report["large-sideways.jpg"]
    assert (turned["width"], turned["height"]) == (4032, 3024)
    box_inside(turned, 300, 200, 1700, 1600)


def test_pixel_limit_refuses_decompression_bombs_unallocated(cli, photos, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    # A 30000 x 30000 one-bit PNG: 110 KB on disk, 900 megapixels decoded.
    side = 30000
    row = b"\x00" + bytes(side // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (media / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    photos["portrait"].save(media / "portrait.jpg")  # 512 x 512
    errors = {os.path.basename(e["path"]): e["error"] for e in cli.json("scan", media)["error_files"]}
    assert errors == {"bomb.png": "image has 900,000,000 pixels, over the limit of 100,000,000 "
                                  "(possible decompression bomb)"}
    (media / "bomb.png").unlink()
    os.utime(media / "portrait.jpg", ns=(1, 1))  # changed: read again under the lower limit
    errors = {os.path.basename(e["path"]): e["error"] for e in cli.json("scan", media, "--max-pixels", 200000)["error_files"]}
    assert errors == {"portrait.jpg": "image has 262,144 pixels (512x512), over the limit of 200,000 "
                                      "(possible decompression bomb)"}


def test_hostile_and_broken_files_are_errors_and_the_scan_goes_on(cli, demo_folder, photos, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    good = demo_folder["portrait"].read_bytes()
    buffer = io.BytesIO()
    photos["portrait"].save(buffer, format="PNG")
    png = buffer.getvalue()
    write_video(tmp_path / "ok.mp4", "mp4v", [np.asarray(photos["portrait"])] * 5)
    mp4 = (tmp_path / "ok.mp4").read_bytes()

    (media / "empty.jpg").write_bytes(b"")
    (media / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (media / "truncated.png").write_bytes(png[: len(png) // 2])
    (media / "random.jpg").write_bytes(np.random.default_rng(1).bytes(4000))
    (media / "notes.txt").write_text("a text file, not a photo\n")
    (media / "corrupt.mp4").write_bytes(mp4[:32] + np.random.default_rng(2).bytes(20000))
    (media / "loop-a.jpg").symlink_to("loop-b.jpg")
    (media / "loop-b.jpg").symlink_to("loop-a.jpg")
    (media / "dangling.jpg").symlink_to("gone.jpg")
    os.mkfifo(media / "pipe.jpg")  # opening it would block a naive scan forever
    (media / "folder.jpg").mkdir()  # a directory named like an image is walked as a folder
    odd_names = ["inside folder.jpg", "with space.jpg", "ünïcødé 照片.jpg", "new\nline.jpg"]
    (media / "folder.jpg" / odd_names[0]).write_bytes(good)
    for name in odd_names[1:]:
        (media / name).write_bytes(good)
    # A name that is not UTF-8 at all: os.walk hands its bytes over as lone surrogates.
    with open(os.fsencode(media) + b"/latin1-\xe9t\xe9.jpg", "wb") as handle:
        handle.write(good)

    cli("enroll", EILEEN, demo_folder["reference"])
    result = cli("scan", media, "--json")
    summary = json.loads(result.stdout)
    errors = {os.path.basename(e["path"]): e["error"] for e in summary["error_files"]}
    assert errors.pop("truncated.jpg").startswith("corrupt or truncated image: image file is truncated")
    assert errors == {
        "empty.jpg": "empty file (0 bytes)",
        "truncated.png": "corrupt or truncated image: image file is truncated",
        "random.jpg": "not an image or video (its first bytes match no supported format)",
        "notes.txt": "not an image or video (its first bytes match no supported format)",
        "corrupt.mp4": "not a readable video (OpenCV cannot open it)",
        "loop-a.jpg": "cannot read the file: Too many levels of symbolic links",
        "loop-b.jpg": "cannot read the file: Too many levels of symbolic links",
        "dangling.jpg": "file not found (deleted, or a broken symbolic link)",
        "pipe.jpg": "not a regular file",
    }
    assert (summary["files"], summary["errors"], summary["decisions"]["remove"]) == (15, 10, 5)
    errors["truncated.jpg"] = "corrupt or truncated image"
    for name, reason in errors.items():  # said on stderr as it happened, file named
        assert f"{media / name}: {reason}" in result.stderr
    assert "moov atom" not in result.stderr  # FFmpeg's own noise is kept out

    report = cli.report()
    for name in [*odd_names, "latin1-\\xe9t\\xe9.jpg"]:
        assert report[name]["decision"] == "remove", name
    text = cli("report").stdout
    assert f"REMOVE  {media}/new\\nline.jpg\n" in text  # one line per file, newline escaped
    assert f"REMOVE  {media}/latin1-\\xe9t\\xe9.jpg\n" in text

    # Scanning again reads nothing new and keeps every result.
    again = cli.json("scan", media)
    assert again["scanned"] == 3 and again["unchanged"] == 12  # loops and dangling link: checked again
    assert cli.report() == report


def test_moved_and_deleted_files(cli, demo_folder, tmp_path):
    media = tmp_path / "media"
    (media / "a").mkdir(parents=True)
    for name in ("one.jpg", "two.jpg"):
        shutil.copy(demo_folder["portrait"], media / "a" / name)
    shutil.copy(demo_folder["hopper"], media / "a" / "hopper.jpg")
    cli("enroll", EILEEN, demo_folder["reference"])
    assert cli.json("scan", media)["scanned"] == 2  # two.jpg is a copy of one.jpg
    (media / "b").mkdir()
    (media / "a" / "one.jpg").rename(media / "b" / "moved.jpg")
    (media / "a" / "hopper.jpg").unlink()
    summary = cli.json("scan", media)
    assert (summary["scanned"], summary["copies"], summary["gone"]) == (0, 1, 2)
    report = cli.report()
    assert sorted(report) == ["moved.jpg", "two.jpg"]
    assert report["moved.jpg"]["decision"] == "remove"


def test_unreadable_file_is_an_error(new_db, demo_folder, tmp_path):
    """A file without read permission. Root reads anything, so root drops that capability."""
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(demo_folder["portrait"], media / "locked.jpg")
    shutil.copy(demo_folder["portrait"], media / "open.jpg")
    (media / "locked.jpg").chmod(0)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "matcher", "--db", str(new_db("c")), "scan", "--json", str(media)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["error_files"] == [{"path": str(media / "locked.jpg"), "error": "permission denied: cannot read the file"}]
    assert summary["scanned"] == 2 and summary["faces"] > 0  # open.jpg was read


def test_large_jpegs_are_decoded_reduced_and_small_faces_embedded_from_a_full_decode(demo_folder, tmp_path):
    """A 4032 px JPEG is decoded at half size for detection (its DCT scaling); a face that is large
    there is embedded from that decode, a small one (< 100 px) from the picture at full size
    instead (only the pixels around it: the same embedding and quality as from a full decode),
    also where the phone stored the picture turned (EXIF orientation)."""
    from matcher.faces import process_engine
    from matcher.faces.quality import measure
    from matcher.media import decode_image, image_frames
    from matcher.model import Box
    from matcher.observe import SCAN_ENGINE, ScanOptions, observe

    engine = process_engine(SCAN_ENGINE)
    portrait = Image.open(demo_folder["portrait"]).convert("RGB")
    cases = {"big": (on_canvas(portrait, 1400, (2300, 900)), 1), "small": (on_canvas(portrait, 420, (700, 2000)), 1),
             # Stored turned a quarter (the camera held upright): the picture as seen is 3024 x 4032.
             "small-turned": (on_canvas(portrait, 420, (700, 2000)).transpose(Image.Transpose.ROTATE_90), 6),
             "small-flipped": (on_canvas(portrait, 420, (3200, 2400)).transpose(Image.Transpose.ROTATE_180), 3),
             # A head tilted 30 degrees: found turned (the tilt path), its chip cut turned.
             "small-tilted": (on_canvas(portrait.rotate(30, resample=Image.Resampling.BICUBIC, expand=True,
                                                         fillcolor=(128, 128, 128)), 900, (700, 1500)), 1)}
    tilted = set()
    for name, (photo, orientation) in cases.items():
        path = tmp_path / f"{name}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        photo.save(path, quality=90, exif=exif)
        data = path.read_bytes()
        [frame] = image_frames(data, min_side=lambda width, height: engine.decode_side(height, width))
        assert frame.scale == 2.0 and sorted(frame.rgb.shape[:2]) == [1512, 2016]  # 1/2 of 4032x3024

        obs = observe(str(path), ScanOptions())
        [face] = obs.faces
        full = decode_image(data)
        assert (obs.height, obs.width) == full.shape[:2]
        from_full = engine.embed(full, [face.box])[0]
        halved = Box(*(v // 2 for v in face.box.as_list()))
        from_reduced = engine.embed(np.ascontiguousarray(frame.rgb), [halved])[0]
        if name.startswith("small"):
            assert face.box.width < 2 * 100  # under 100 px in the half-size decode
            # Embedded from the picture at full size (the same pixels: see the test below; a face the
            # detector saw tilted is cut turned, and turning about a shifted centre rounds differently).
            assert np.linalg.norm(face.embedding - from_full) < (1e-3 if face.box.angle else 1e-5)
            assert np.linalg.norm(face.embedding - from_reduced) > 1e-3
            assert face.quality == measure(full, face.box, face.box.width)
            tilted.add(bool(face.box.angle))
        else:
            assert face.box.width >= 2 * 100
            assert np.linalg.norm(face.embedding - from_reduced) < 1e-5  # embedded from the cheap decode
            assert np.linalg.norm(face.embedding - from_full) > 1e-3
    assert tilted == {False, True}  # both ways of cutting a chip were compared


@pytest.mark.parametrize("orientation", range(1, 9))
def test_full_size_regions_are_the_pixels_of_the_upright_picture(orientation):
    """Each EXIF orientation: the regions are exactly the slices of the full, upright decode."""
    from matcher.media import decode_image, full_size_regions

    picture = Image.fromarray(np.random.default_rng(orientation).integers(0, 255, (300, 400, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = io.BytesIO()
    picture.save(stored, "JPEG", exif=exif, quality=90)
    full = decode_image(stored.getvalue())
    height, width = full.shape[:2]
    assert (height, width) == ((400, 300) if orientation >= 5 else (300, 400))
    # And the full decode is Pillow's own, turned upright by Pillow.
    assert np.array_equal(full, np.asarray(ImageOps.exif_transpose(Image.open(stored)).convert("RGB")))
    rects = [(10, 20, 110, 90), (0, 0, width, height), (width - 50, height - 30, width, height), (5, 7, 6, 8)]
    for region, (left, top, right, bottom) in zip(full_size_regions(stored.getvalue(), rects), rects):
        assert (region.top, region.left) == (top, left)
        assert np.array_equal(region.rgb, full[top:bottom, left:right])

