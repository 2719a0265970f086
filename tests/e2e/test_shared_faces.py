"""End to end on the real faces of ../shared/faces (skipped with a reason where absent)."""

import json
import os

import pytest

GROUPS = [
    ("Ariel_Sharon", "Colin_Powell", "Tony_Blair"),
    ("Arnold_Schwarzenegger", "George_W_Bush", "Hugo_Chavez"),
]


@pytest.mark.parametrize("enrolled", GROUPS, ids=["-".join(g) for g in GROUPS])
def test_lfw10_enrolled_people_are_flagged_and_others_never_removed(cli, shared_faces, tmp_path, enrolled):
    lfw = shared_faces / "lfw10"
    everyone = sorted(p.name for p in lfw.iterdir() if p.is_dir())
    assert len(everyone) == 10
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for person in everyone:
        photos = sorted((lfw / person).glob("*.jpg"))
        if person in enrolled:
            cli("enroll", person.replace("_", " "), *photos[:2])
            photos = photos[2:]
        for photo in photos:
            os.symlink(photo, uploads / photo.name)
    summary = cli.json("scan", "--follow-links", uploads)  # the photos are linked in from ../shared
    assert summary["errors"] == 0 and summary["files"] == 3 * 8 + 7 * 10

    report = cli.report()
    own = {name: e for name, e in report.items() if name.rsplit("_", 1)[0] in enrolled}
    others = {name: e for name, e in report.items() if name not in own}
    flagged = [name for name, e in own.items() if e["decision"] in ("remove", "review")]
    assert len(own) == 24 and sorted(flagged) == sorted(own), sorted(set(own) - set(flagged))  # 24 of 24
    for name in flagged:  # flagged for the right person
        person = name.rsplit("_", 1)[0].replace("_", " ")
        assert person in {f["person"] for f in own[name]["faces"]}
    removed = [name for name, e in others.items() if e["decision"] == "remove"]
    assert removed == []


# Who appears in each group still, checked by eye on the pictures with the boxes
# drawn (background extras in bbt2 are out of focus and not counted).
BBT_GROUPS = {
    "bbt1.jpg": {"raj", "leonard", "howard", "sheldon"},
    "bbt2.jpg": {"leonard", "sheldon"},
    "bbt3.jpg": {"sheldon", "howard", "penny", "raj", "leonard"},
    "bbt4.jpg": {"amy", "raj", "bernadette", "leonard", "penny", "sheldon"},
    "bbt5.jpg": {"raj", "penny", "sheldon", "leonard", "howard"},
}


def test_bbt_characters_are_found_in_group_stills(cli, shared_faces):
    bbt = shared_faces / "bbt"
    for folder in sorted(p for p in bbt.iterdir() if p.is_dir() and p.name != "group"):
        cli("enroll", folder.name, *sorted(folder.glob("*.png")))
    assert len(cli.json("people")) == 8
    cli("scan", bbt / "group")
    report = cli.report()
    for still, cast in BBT_GROUPS.items():
        found = {face["person"] for face in report[still]["faces"] if face["decision"] in ("remove", "review")}
        assert found == cast, still


def test_lfw10_photos_in_other_formats_sideways_and_in_videos(cli, shared_faces, tmp_path):
    """Real faces through every intake path: HEIC, PNG, EXIF-rotated JPEG, and videos per person."""
    import cv2
    import numpy as np
    from PIL import Image

    pillow_heif = pytest.importorskip("pillow_heif", reason="pillow-heif reads HEIC")
    pillow_heif.register_heif_opener()
    lfw = shared_faces / "lfw10"
    enrolled = {"Ariel_Sharon": "Ariel Sharon", "Hugo_Chavez": "Hugo Chavez"}
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    photos = {p.name: [Image.open(f).convert("RGB") for f in sorted(p.glob("*.jpg"))]
              for p in sorted(lfw.iterdir()) if p.is_dir()}
    for person, images in photos.items():
        if person in enrolled:
            refs = tmp_path / "refs" / person
            refs.mkdir(parents=True)
            for number, image in enumerate(images[:2]):
                image.save(refs / f"{number}.jpg")
            cli("enroll", enrolled[person], *sorted(refs.iterdir()))
        images[2].save(uploads / f"{person}.heic", format="HEIF")
        images[3].save(uploads / f"{person}.png")
        exif = Image.Exif()
        exif[0x0112] = 6
        images[4].transpose(Image.Transpose.ROTATE_90).save(uploads / f"{person}-sideways.jpg", exif=exif)
        # One second each of three other photos, 5 frames a second.
        writer = cv2.VideoWriter(str(uploads / f"{person}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 5, (250, 250))
        for image in images[5:8]:
            for _ in range(5):
                writer.write(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR))
        writer.release()
    summary = cli.json("scan", uploads)
    assert summary["errors"] == 0 and summary["files"] == 40

    report = cli.report()
    flagged = {name: entry for name, entry in report.items() if entry["decision"] != "none"}
    assert sorted(flagged) == sorted(
        f"{person}{suffix}" for person in enrolled for suffix in (".heic", ".png", "-sideways.jpg", ".mp4")
    )
    for name, entry in flagged.items():
        [match] = entry["matches"]
        assert (match["person"], match["decision"]) == (enrolled[name.split(".")[0].removesuffix("-sideways")],
                                                        "remove"), name
        if name.endswith(".mp4"):  # one match for the video, with each second she or he is seen
            assert match["frame_times"] == [0.0, 1.0, 2.0]


def test_blazeface_detector_keeps_the_faces_hog_finds(shared_faces):
    """Phone-size photos (4032x3024, faces 150-700 px, some EXIF-rotated) and LFW originals of all ten
    lfw10 people: HOG around BlazeFace's proposals keeps the faces whole-image HOG finds, and their
    embeddings stay within the drift of a few pixels' box shift. Faces turned on their side, which
    whole-image HOG misses, it finds as well."""
    import io

    import numpy as np
    from PIL import Image

    from helpers import on_canvas
    from matcher.faces import DlibSpec, process_engine
    from matcher.media import image_frames

    def overlap(a, b):
        inter = max(0, min(a.bottom, b.bottom) - max(a.top, b.top)) * max(0, min(a.right, b.right) - max(a.left, b.left))
        return inter / (a.width * a.height + b.width * b.height - inter)

    hog, fast = process_engine(DlibSpec()), process_engine(DlibSpec(detector="blazeface"))
    people = sorted(p for p in (shared_faces / "lfw10").iterdir() if p.is_dir())
    photos = []  # (photo, its face turned on its side)
    for number, person in enumerate(people):
        face = Image.open(sorted(person.glob("*.jpg"))[number % 3]).convert("RGB")
        photos.append((face, False))
        width = (150, 250, 400, 700)[number % 4] * 250 // 107  # LFW faces are ~107 px of 250
        canvas = on_canvas(face, width, (400 + 250 * number, 300 + 120 * number))
        if number % 3 == 0:
            canvas = canvas.rotate(90, expand=True)
        photos.append((canvas, number % 3 == 0))
    drifts = []
    for photo, sideways in photos:
        data = io.BytesIO()
        photo.save(data, "JPEG", quality=90)
        frame = next(image_frames(data.getvalue(), min_side=lambda w, h: hog.decode_side(h, w)))
        rgb = np.ascontiguousarray(frame.rgb)
        expected, kept = hog.detect(rgb, frame.scale), fast.detect(rgb, frame.scale)
        # One more at most, only where the face lies on its side (upright HOG cannot see it; the
        # tilt path may), and found turned.
        extra = [box for box in kept if all(overlap(box, other) < 0.5 for other in expected)]
        assert len(kept) == len(expected) + len(extra) and len(extra) <= (1 if sideways else 0), (expected, kept)
        assert all(abs(box.angle) > 12 for box in extra)
        for box in expected:
            twin = max(kept, key=lambda other: overlap(box, other))
            assert overlap(box, twin) > 0.6, (box, twin)
            drifts.append(float(np.linalg.norm(hog.embed(rgb, [box])[0] - fast.embed(rgb, [twin])[0])))
    assert len(drifts) >= len(photos) * 3 // 4  # not a comparison of two empty lists: 16 of 20 here
    # Measured here: max 0.080, mean 0.035 (HOG's box found on a zoomed crop shifts by a pixel or two).
    # That is up to the whole gap between `match` and `review` (0.07): a face at the edge of a band
    # can move across it (README, Throughput), so the bound is what is measured, not more.
    assert max(drifts) < 0.085 and float(np.mean(drifts)) < 0.05, drifts


def test_calibrate_recovers_a_sensible_threshold_on_lfw10(cli, shared_faces, tmp_path):
    from PIL import Image

    plot, output = tmp_path / "cal.png", tmp_path / "cal.json"
    result = cli.json("calibrate", shared_faces / "lfw10" / "pairs.txt", "--plot", plot, "--output", output)
    assert json.loads(output.read_text()) == result
    assert (result["same_pairs"], result["different_pairs"], result["photos_left_out"]) == (450, 450, {})
    # dlib's published same-person threshold is 0.6; LFW's impostor pairs start near it.
    assert 0.5 <= result["recommended"]["match"] <= 0.6
    assert result["recommended"]["match"] <= result["recommended"]["review"] <= 0.7
    assert result["recommended"]["match"] < result["different_distance"]["min"]
    assert result["ten_fold_accuracy"] >= 0.97 and result["tar_at_far"]["1%"]["true_accept_rate"] >= 0.95
    # What data/policy.toml states: no different-person pair is a confident match at the shipped `match`.
    from matcher.policy import load_policy

    [shipped] = [r for r in result["at_thresholds"] if r["threshold"] == load_policy().match]
    assert shipped["false_accept_rate"] == 0 and result["different_distance"]["min"] > load_policy().match
    assert 0 < result["equal_error_rate"] < 0.03
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] >= 1000


def test_calibrate_on_a_folder_leaves_out_group_photos(cli, shared_faces, tmp_path):
    result = cli.json("calibrate", shared_faces / "bbt", "--plot", tmp_path / "p.png", "--output", tmp_path / "r.json")
    left_out = result["photos_left_out"]
    assert sorted(os.path.basename(p) for p in left_out) == [f"bbt{i}.jpg" for i in range(1, 6)]
    assert all("faces: which one is the labelled person is unknown" in reason for reason in left_out.values())
    # 8 people x 5 crops: 8 x C(5,2) same-person pairs, the rest different.
    assert (result["same_pairs"], result["different_pairs"]) == (80, 700)
    assert result["recommended"]["match"] < result["different_distance"]["min"]


def test_faces_tilted_in_the_picture_are_found_and_matched(cli, shared_faces, tmp_path):
    """A head tilted 30 to 60 degrees (a selfie held askew, a photo posted rotated): BlazeFace's eye
    line turns the crop upright for HOG and for the landmarks, so the face is found and its
    embedding is the upright face's; an enrolled person's tilted photo is removed, no one else's."""
    import numpy as np
    from PIL import Image

    from matcher.faces import process_engine
    from matcher.observe import SCAN_ENGINE

    engine = process_engine(SCAN_ENGINE)
    people = sorted(p for p in (shared_faces / "lfw10").iterdir() if p.is_dir())
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for number, person in enumerate(people):
        image = Image.open(sorted(person.glob("*.jpg"))[5]).convert("RGB")
        image = image.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
        [upright] = engine.faces(np.asarray(image))
        angle = (30, -45, 60, -60)[number % 4]
        tilted = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
        tilted.save(uploads / f"{person.name}.jpg")
        [face] = engine.faces(np.asarray(tilted))
        # Turned upright on the way (BlazeFace's eye line is rough, and heads lean in the originals).
        assert face.box.angle * angle > 0 and abs(face.box.angle) > 20, (person.name, angle, face.box.angle)
        assert np.linalg.norm(face.embedding - upright.embedding) < 0.2, (person.name, angle)

    enrolled = {"Ariel_Sharon": "Ariel Sharon", "Gerhard_Schroeder": "Gerhard Schroeder"}
    for folder, name in enrolled.items():
        cli("enroll", name, *sorted((shared_faces / "lfw10" / folder).glob("*.jpg"))[:2])
    assert cli.json("scan", uploads)["errors"] == 0
    flagged = {name: entry["decision"] for name, entry in cli.report().items() if entry["decision"] != "none"}
    assert flagged == {f"{folder}.jpg": "remove" for folder in enrolled}


def test_faces_with_the_lower_face_covered_are_found_and_go_to_review(cli, shared_faces, tmp_path):
    """Nose and mouth behind a mask (as bench/conditions.py and `calibrate --bands` cover them):
    HOG, a detector of whole frontal faces, misses most of them; BlazeFace still proposes them, so
    they are kept as faces not seen frontally, in the rules' band "not-frontal"; those HOG still
    sees show almost no texture in the lower face, the band "covered". An enrolled person's covered
    face goes to review, never away without a person, and no stranger's is flagged."""
    import numpy as np
    from PIL import Image

    from matcher.calibrate import degrade
    from matcher.faces import DlibSpec, process_engine
    from matcher.faces.geometry import overlap
    from matcher.observe import SCAN_ENGINE

    hog, engine = process_engine(DlibSpec()), process_engine(SCAN_ENGINE)
    rng = np.random.default_rng(3)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    photos = hog_found = found = not_frontal = 0
    for person in sorted(p for p in (shared_faces / "lfw10").iterdir() if p.is_dir()):
        for path in sorted(person.glob("*.jpg"))[5:8]:
            photo = np.asarray(Image.open(path).convert("RGB"))
            face = max((f for f in engine.faces(photo) if f.box.frontal), key=lambda f: f.box.width)
            covered = degrade(photo, face.box, "covered", rng)
            Image.fromarray(covered).save(uploads / f"{person.name}-{path.stem[-4:]}.png")
            photos += 1
            hog_found += any(overlap(box, face.box) > 0.3 for box in hog.detect(covered))
            seen = [box for box in engine.detect(covered) if overlap(box, face.box) > 0.3]
            found += bool(seen)
            not_frontal += any(not box.frontal for box in seen)
    # Measured here: 30 photos; whole-image HOG finds 6 of the covered faces, the scan's detector 28
    # (22 of them seen only by the proposal network).
    assert photos == 30 and found >= 26 and found >= hog_found + 18 and not_frontal >= 18, (found, hog_found)

    enrolled = {"Ariel_Sharon": "Ariel Sharon", "Colin_Powell": "Colin Powell", "Tony_Blair": "Tony Blair"}
    for folder, name in enrolled.items():
        cli("enroll", name, *sorted((shared_faces / "lfw10" / folder).glob("*.jpg"))[:2])
    assert cli.json("scan", uploads)["errors"] == 0
    report = {name: entry for name, entry in cli.report().items() if entry["decision"] != "none"}
    flagged = {name: entry["decision"] for name, entry in report.items()}
    ours = {name: decision for name, decision in flagged.items() if name.split("-")[0] in enrolled}
    # The faces seen only by the proposals are reviewed in their own band, with a reason saying so.
    not_frontal = [name for name, entry in report.items()
                   if entry["matches"][0]["rule"] == "not-seen-frontally" and entry["decision"] == "review"]
    # Nothing covered is removed, and no stranger is flagged. Before the band "covered", a covered
    # face HOG still saw was judged as any face: one stranger's, 0.617 from Tony Blair, went to review
    # under the general limit (0.62), and one of Ariel Sharon's, at 0.499, was removed.
    assert set(flagged.values()) == {"review"} and flagged == ours, flagged
    from helpers import raw

    with raw(cli.db) as conn:
        measured = [json.loads(quality) for (quality,) in conn.execute("SELECT quality FROM faces")]
    seen_whole = [q["lower_texture"] for q in measured if q["frontal"]]
    assert sum(texture < 0.15 for texture in seen_whole) >= 3, seen_whole  # HOG saw them: the band "covered"
    # Measured here: 7 of the 9 covered photos of the enrolled people flagged, all to review.
    assert len(ours) >= 6 and len(not_frontal) >= 6 and set(not_frontal) <= set(ours), (not_frontal, flagged)


def test_calibration_by_band_sees_faces_as_the_scan_does(cli, shared_faces, tmp_path):
    """`calibrate --bands` degrades labelled photos and finds their faces with the scan's own
    detector: the bands are measured on the faces (and boxes) a scan would see. Whole-image HOG
    loses faces shrunk to 28 px that the scan finds (measured on lfw10: 28 of 97)."""
    import shutil

    labelled = tmp_path / "labelled"
    for person in sorted(p for p in (shared_faces / "lfw10").iterdir() if p.is_dir())[:4]:
        (labelled / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:3]:
            shutil.copy(photo, labelled / person.name / photo.name)
    result = cli.json("calibrate", "--bands", labelled, "--output", tmp_path / "bands.json")
    assert result["missed"]["width-28"] == 0 and result["missed"]["clean"] == 0, result["missed"]
    assert result["bands"]["general"]["probes"] > 0 and result["conditions"]["width-28"]["probes"] >= 11


def test_faces_in_a_dark_noisy_shot_are_found_and_still_theirs(shared_faces):
    """A phone at night (a quarter of the light, gamma 2.2, sensor noise; as bench/conditions.py
    low-light): HOG misses faces BlazeFace still proposes with confidence; on a smoothed, stretched
    crop it finds them, and their embeddings stay close to the same photo's in daylight."""
    import numpy as np
    from PIL import Image

    from matcher.faces import DlibSpec, process_engine
    from matcher.observe import SCAN_ENGINE

    hog, engine = process_engine(DlibSpec()), process_engine(SCAN_ENGINE)
    rng = np.random.default_rng(13)
    photos = found = hog_found = 0
    distances = []
    for person in sorted(p for p in (shared_faces / "lfw10").iterdir() if p.is_dir()):
        for path in sorted(person.glob("*.jpg"))[:6]:
            daylight = np.asarray(Image.open(path).convert("RGB"))
            faces = [f for f in engine.faces(daylight) if f.box.frontal]
            if len(faces) != 1:  # a second person in the photo: which is which is not this test's point
                continue
            light = (daylight / 255.0) ** 2.2 * 0.25 * 255
            dark = np.clip(light + rng.normal(0, 6, daylight.shape), 0, 255).astype(np.uint8)
            photos += 1
            hog_found += bool(hog.detect(dark))
            in_the_dark = [f for f in engine.faces(dark) if f.box.frontal]  # what HOG saw, not proposals alone
            if in_the_dark:
                found += 1
                distances.append(min(float(np.linalg.norm(f.embedding - faces[0].embedding)) for f in in_the_dark))
    # Measured here: 58 photos; whole-image HOG finds 48, HOG on plain crops 43, with the dark crops
    # smoothed and stretched 53, each within 0.52 of its daylight face (median 0.32).
    assert photos >= 50
    assert found > hog_found and found >= 0.9 * photos, (found, hog_found, photos)
    assert max(distances) < 0.55, distances


def test_faces_that_fill_the_picture_are_found(shared_faces):
    """Tight portrait crops (an avatar, a cropped repost): all 40 bbt crops, 150 px with the face
    filling them, are found by the scan's detector as by whole-image HOG."""
    import numpy as np
    from PIL import Image

    from matcher.faces import process_engine
    from matcher.observe import SCAN_ENGINE

    engine = process_engine(SCAN_ENGINE)
    crops = sorted(p for p in (shared_faces / "bbt").glob("*/*.png") if p.parent.name != "group")
    missed = [p.name for p in crops if len(engine.detect(np.asarray(Image.open(p).convert("RGB")))) != 1]
    assert len(crops) == 40 and missed == []


def test_a_look_alike_ruled_not_them_is_cleared_when_the_photo_comes_again(cli, shared_faces, tmp_path):
    """Jacques Chirac's photo 0007 comes 0.61 from Gerhard Schroeder (enrolled from two photos):
    a possible match, reviewed, and so are its reposts (grey, shrunk and recompressed). A reviewer
    rules the first not him: the reposts leave the queue as that look-alike, while Schroeder's
    own photos are removed as before."""
    from PIL import Image, ImageOps

    lfw = shared_faces / "lfw10"
    cli("enroll", "Gerhard Schroeder", *sorted((lfw / "Gerhard_Schroeder").glob("*.jpg"))[:2])
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    chirac = Image.open(lfw / "Jacques_Chirac" / "Jacques_Chirac_0007.jpg").convert("RGB")
    chirac.save(uploads / "chirac.jpg", quality=95)
    ImageOps.grayscale(chirac).convert("RGB").save(uploads / "chirac-grey.jpg")
    chirac.resize((160, 160)).save(uploads / "chirac-small.jpg", quality=40)
    for photo in sorted((lfw / "Gerhard_Schroeder").glob("*.jpg"))[2:]:
        os.symlink(photo, uploads / photo.name)
    assert cli.json("scan", "--follow-links", uploads)["errors"] == 0
    queue = {os.path.basename(item["path"]): item for item in cli.json("review", "list")}
    # Measured here: 0.610, 0.608 and 0.591 from him (his own photos: 0.32-0.53, all removed).
    assert sorted(queue) == ["chirac-grey.jpg", "chirac-small.jpg", "chirac.jpg"], sorted(queue)

    cli("review", "decide", queue["chirac.jpg"]["id"], "--not-them", "--reviewer", "rosa", "--note", "his neighbour")
    assert cli.json("review", "list") == []
    report = cli.report()
    rules = {name: (entry["decision"], entry["matches"][0]["rule"]) for name, entry in report.items()}
    assert rules["chirac.jpg"] == ("allow", "reviewer")
    assert rules["chirac-grey.jpg"] == rules["chirac-small.jpg"] == ("allow", "look-alike-cleared")
    assert "a reviewer ruled is not Gerhard Schroeder" in report["chirac-grey.jpg"]["matches"][0]["reason"]
    own = [decision for name, (decision, _) in rules.items() if name.startswith("Gerhard_Schroeder")]
    assert own == ["remove"] * 8

    # The ruled photo is taken down: its face is gone, so is what it cleared; the reposts come back.
    (uploads / "chirac.jpg").unlink()
    assert cli.json("scan", "--follow-links", uploads)["gone"] == 1
    assert sorted(os.path.basename(item["path"]) for item in cli.json("review", "list")) == [
        "chirac-grey.jpg", "chirac-small.jpg"]
