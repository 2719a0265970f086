"""Calibrate distance thresholds on labelled faces.

Input: an LFW-style ``pairs.txt`` (pairs listed beside ``<Name>/<Name>_NNNN.jpg``
folders) or a folder of ``<person>/<photos>``, whose every pair of photos is
used. Output: how well same-person and different-person pairs separate, and
the thresholds to put in the rules file. The shipped thresholds come from here
(see ``models/``).
"""

from __future__ import annotations

import itertools
import os
import random
from dataclasses import asdict, dataclass, field

import numpy as np

from matcher.faces import FaceEngine
from matcher.faces.quality import COVERED_LOWER_TEXTURE
from matcher.media import MediaError, decode_image, sniff
from matcher.model import Box
from matcher.policy import Band

# The false-accept rates the recommended thresholds are held to: ``match``
# (removal without a human) at most 0.1 %, ``review`` at most 1 %.
MATCH_MAX_FAR = 0.001
REVIEW_MAX_FAR = 0.01


class CalibrationError(ValueError):
    pass


@dataclass
class Pair:
    first: str
    second: str
    same: bool


def read_pairs(pairs_path: str) -> list[Pair]:
    """Pairs of image paths from an LFW ``pairs.txt`` beside ``<Name>/<Name>_NNNN.jpg`` folders."""
    root = os.path.dirname(os.path.abspath(pairs_path))

    def image(name: str, number: str) -> str:
        return os.path.join(root, name, f"{name}_{int(number):04d}.jpg")

    pairs = []
    with open(pairs_path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for number, line in enumerate(lines[1:], start=2):  # first line: folds, pairs per fold
        fields = line.split()
        try:
            if len(fields) == 3:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True))
            elif len(fields) == 4:
                pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False))
            elif fields:
                raise CalibrationError(f"{pairs_path}:{number}: expected 3 or 4 fields, found {len(fields)}")
        except ValueError as exc:
            if isinstance(exc, CalibrationError):
                raise
            raise CalibrationError(f"{pairs_path}:{number}: photo numbers must be integers") from None
    if not pairs:
        raise CalibrationError(f"{pairs_path}: no pairs found")
    return pairs


def read_folder(folder: str) -> dict[str, list[str]]:
    """``{person: [photo paths]}`` from ``folder/<person>/<photos>``; other files are ignored."""
    people = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir() and not entry.name.startswith("."):
            photos = sorted(
                os.path.join(entry.path, name) for name in os.listdir(entry.path)
                if not name.startswith(".") and os.path.isfile(os.path.join(entry.path, name))
            )
            if photos:
                people[entry.name] = photos
    if sum(len(photos) >= 2 for photos in people.values()) == 0 or len(people) < 2:
        raise CalibrationError(
            f"{folder}: needs at least two people's folders and one person with two photos "
            "(layout: FOLDER/<person>/<photos>)"
        )
    return people


def folder_pairs(people: dict[str, list[str]]) -> list[Pair]:
    """Every pair of photos: same-person within each folder, different-person across folders."""
    labelled = [(person, path) for person, paths in people.items() for path in paths]
    pairs = [Pair(a, b, pa == pb) for (pa, a), (pb, b) in itertools.combinations(labelled, 2)]
    random.Random(0).shuffle(pairs)  # folds of the 10-fold accuracy mix people, reproducibly
    return pairs


def read_image(path: str) -> np.ndarray:
    """A labelled photo's RGB pixels (OSError, MediaError: unreadable, or not an image)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if sniff(data[:64]) is None:
        raise MediaError("not an image")
    return np.ascontiguousarray(decode_image(data))


def embed_photos(paths, engine: FaceEngine, largest_of_several: bool) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """One embedding per photo, and the reason for each photo left out.

    A photo showing several faces gives its largest when ``largest_of_several``
    (LFW's convention: the labelled person is the centred, largest face), and
    is left out otherwise (which face is the person is unknown).
    """
    embeddings, skipped = {}, {}
    for path in dict.fromkeys(paths):
        try:
            faces = engine.faces(read_image(path))
        except (OSError, MediaError) as exc:
            skipped[path] = str(exc)
            continue
        if not faces:
            skipped[path] = "no face found"
            continue
        if len(faces) > 1 and not largest_of_several:
            skipped[path] = f"{len(faces)} faces: which one is the labelled person is unknown"
            continue
        embeddings[path] = max(faces, key=lambda f: f.box.width * f.box.height).embedding
    return embeddings, skipped


def pair_distances(pairs: list[Pair], embeddings: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(distances, same) for the pairs whose both photos have a face."""
    usable = [p for p in pairs if p.first in embeddings and p.second in embeddings]
    if not usable:
        return np.empty(0), np.empty(0, dtype=bool)
    first = np.stack([embeddings[p.first] for p in usable]).astype(np.float64)
    second = np.stack([embeddings[p.second] for p in usable]).astype(np.float64)
    return np.linalg.norm(first - second, axis=1), np.array([p.same for p in usable])


def rates(distances: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    """True-accept and false-accept rates when a pair at or below ``threshold`` is called the same person."""
    accepted = distances <= threshold
    return {
        "threshold": round(float(threshold), 4),
        "true_accept_rate": float(accepted[same].mean()) if same.any() else float("nan"),
        "false_accept_rate": float(accepted[~same].mean()) if (~same).any() else float("nan"),
        "accuracy": float((accepted == same).mean()),
    }


def threshold_at_far(distances: np.ndarray, same: np.ndarray, max_false_accept: float) -> float:
    """The largest threshold whose false-accept rate is at most ``max_false_accept``.

    With N different-person pairs, fewer than 1/N cannot be measured: then the
    threshold lies just below the smallest different-person distance.
    """
    different = np.sort(distances[~same])
    allowed = int(np.floor(max_false_accept * len(different)))
    return float(np.nextafter(different[allowed], 0)) if len(different) > allowed else float("inf")


def equal_error_rate(distances: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(rate, threshold) where the false-accept and false-reject rates are equal (nearest measured point)."""
    best = (1.0, 0.0)
    gap_best = np.inf
    for threshold in np.unique(distances):
        far = (distances[~same] <= threshold).mean()
        frr = (distances[same] > threshold).mean()
        if abs(far - frr) < gap_best:
            gap_best, best = abs(far - frr), (float((far + frr) / 2), float(threshold))
    return best


def best_threshold(distances: np.ndarray, same: np.ndarray) -> float:
    """The threshold of highest accuracy, halfway between two neighbouring distances."""
    order = np.argsort(distances, kind="stable")
    values, labels = distances[order], same[order]
    # Accepting the first k pairs (k = 0..n): right = same among them + different among the rest.
    same_below = np.concatenate([[0], np.cumsum(labels)])
    different_above = (~labels).sum() - np.concatenate([[0], np.cumsum(~labels)])
    right = same_below + different_above
    cuts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1], [True]]))  # between distinct values
    k = cuts[right[cuts].argmax()]
    if k == 0:
        return float(values[0]) - 1e-9
    if k == len(values):
        return float(values[-1])
    return float((values[k - 1] + values[k]) / 2)


def ten_fold_accuracy(distances: np.ndarray, same: np.ndarray, folds: int = 10) -> tuple[float, float]:
    """LFW-style accuracy: the best threshold on nine folds, tested on the tenth. (mean, std)

    Folds are taken in order, as LFW's ``pairs.txt`` lists them fold by fold.
    """
    parts = np.array_split(np.arange(len(distances)), folds)
    scores = []
    for index, test in enumerate(parts):
        train = np.concatenate([p for i, p in enumerate(parts) if i != index])
        threshold = best_threshold(distances[train], same[train])
        scores.append(((distances[test] <= threshold) == same[test]).mean())
    return float(np.mean(scores)), float(np.std(scores))


@dataclass
class Calibration:
    source: str
    photos: int
    photos_left_out: dict[str, str]
    same_pairs: int
    different_pairs: int
    same_distance: dict
    different_distance: dict
    tar_at_far: dict  # "1%" / "0.1%" -> {"threshold", "true_accept_rate", "false_accept_rate", "accuracy"}
    equal_error_rate: float
    equal_error_threshold: float
    ten_fold_accuracy: float
    ten_fold_std: float
    smallest_measurable_far: float
    recommended: dict  # {"match": t, "review": t}
    at_thresholds: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _summary(values: np.ndarray) -> dict:
    return {
        "min": round(float(values.min()), 4),
        "p5": round(float(np.percentile(values, 5)), 4),
        "median": round(float(np.median(values)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


def calibrate(source: str, distances: np.ndarray, same: np.ndarray, photos: int, skipped: dict[str, str],
              shipped: dict[str, float] | None = None) -> Calibration:
    """All figures for one labelled set; ``shipped``: thresholds in force, also evaluated."""
    if not same.any() or same.all():
        raise CalibrationError(f"{source}: needs both same-person and different-person pairs with faces")
    mean, std = ten_fold_accuracy(distances, same)
    eer, eer_threshold = equal_error_rate(distances, same)
    match = threshold_at_far(distances, same, MATCH_MAX_FAR)
    review = threshold_at_far(distances, same, REVIEW_MAX_FAR)
    marks = sorted({0.5, 0.55, 0.6, *(shipped or {}).values()})
    return Calibration(
        source=source,
        photos=photos,
        photos_left_out=skipped,
        same_pairs=int(same.sum()),
        different_pairs=int((~same).sum()),
        same_distance=_summary(distances[same]),
        different_distance=_summary(distances[~same]),
        tar_at_far={"1%": rates(distances, same, review), "0.1%": rates(distances, same, match)},
        equal_error_rate=eer,
        equal_error_threshold=round(eer_threshold, 4),
        ten_fold_accuracy=mean,
        ten_fold_std=std,
        smallest_measurable_far=1.0 / int((~same).sum()),
        # Rounded down to 2 decimals: a threshold in a rules file should not pretend to 4.
        recommended={"match": float(np.floor(match * 100) / 100), "review": float(np.floor(review * 100) / 100)},
        at_thresholds=[rates(distances, same, t) for t in marks],
    )


def plot(result: Calibration, distances: np.ndarray, same: np.ndarray, path: str,
         shipped: dict[str, float] | None = None) -> None:
    """A PNG: distance histograms of both classes with the thresholds marked, and the ROC curve."""
    # A bare Figure renders with Agg: no pyplot, no display, no global backend switched.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.8), dpi=110)
    left, right = figure.subplots(1, 2)
    bins = np.linspace(0, max(1.0, float(distances.max())), 61)
    left.hist(distances[same], bins=bins, alpha=0.6, color="tab:blue", density=True,
              label=f"same person ({result.same_pairs} pairs)")
    left.hist(distances[~same], bins=bins, alpha=0.6, color="tab:orange", density=True,
              label=f"different people ({result.different_pairs} pairs)")
    for name, value, style in (("recommended match", result.recommended["match"], "-"),
                               ("recommended review", result.recommended["review"], "--")):
        left.axvline(value, color="black", linestyle=style, label=f"{name} {value:.2f}")
    for name, value in (shipped or {}).items():
        left.axvline(value, color="tab:red", linestyle=":", label=f"shipped {name} {value:.2f}")
    left.set_xlabel("embedding distance")
    left.set_ylabel("density")
    left.set_title("Distances")
    left.legend(fontsize=8)

    thresholds = np.unique(distances)
    far = (distances[~same][None, :] <= thresholds[:, None]).mean(axis=1)
    tar = (distances[same][None, :] <= thresholds[:, None]).mean(axis=1)
    right.plot(np.maximum(far, result.smallest_measurable_far / 2), tar, color="tab:blue")
    for label, point in result.tar_at_far.items():
        right.plot(max(point["false_accept_rate"], result.smallest_measurable_far / 2), point["true_accept_rate"],
                   "o", label=f"FAR <= {label}: TAR {100 * point['true_accept_rate']:.1f} % at {point['threshold']:.3f}")
    right.set_xscale("log")
    right.set_xlabel("false-accept rate (log; 0 drawn at half the smallest measurable)")
    right.set_ylabel("true-accept rate")
    right.set_title(f"ROC  (EER {100 * result.equal_error_rate:.2f} %, "
                    f"10-fold accuracy {100 * result.ten_fold_accuracy:.2f} %)")
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"Calibration on {result.source}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)


# -- per quality band ------------------------------------------------------------------------------
#
# Uploads are not portraits: small faces in wide shots, reposts, blur, low light. Probes are
# made from the labelled photos by degrading them here, their faces found and measured as a
# scan measures them (width in pixels, sharpness, brightness), and compared with the clean
# photos of everyone (enrolled references are clean photos). Each probe falls in the first
# band of the layout whose limits its measured quality is under (the rules' bands, tightest
# first, as a scan applies the tightest of those a face is in); rates are per band.

DEGRADATIONS = ("clean", "width-28", "width-32", "width-40", "width-60", "width-90", "jpeg-20", "blur-2", "motion-9",
                "dark-noise", "grey", "covered")

# The band layout measured when the rules file gives none (ids, and the limits a face is under).
DEFAULT_BANDS = (
    ("not-frontal", {"frontal": False}),
    ("covered", {"lower_texture_below": COVERED_LOWER_TEXTURE}),
    ("unmeasured", {"width_below": 28}),
    ("tiny", {"width_below": 40}),
    ("dark", {"brightness_below": 60}),
    ("blurred", {"sharpness_below": 15}),
    ("small", {"width_below": 80}),
)


def degrade(rgb: np.ndarray, face: Box, condition: str, rng: np.random.Generator) -> np.ndarray:
    """The photo as an upload in ``condition`` might show it (``face``: where its face is now)."""
    import io

    import cv2
    from PIL import Image, ImageDraw

    if condition == "clean":
        return rgb
    if condition.startswith("width-"):
        scale = int(condition.split("-")[1]) / face.width
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if condition == "jpeg-20":
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, "JPEG", quality=20)
        return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))
    if condition == "blur-2":
        return cv2.GaussianBlur(rgb, (0, 0), 2)
    if condition == "motion-9":
        kernel = np.zeros((9, 9), np.float32)
        kernel[4, :] = 1 / 9
        return cv2.filter2D(rgb, -1, kernel)
    if condition == "dark-noise":
        dark = (rgb.astype(np.float32) / 255) ** 2.2 * 0.25 * 255 + rng.normal(0, 6, rgb.shape)
        return np.clip(dark, 0, 255).astype(np.uint8)
    if condition == "grey":
        return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if condition == "covered":  # nose and mouth behind a mask of one colour, as bench/conditions.py covers them
        image = Image.fromarray(rgb)
        height = face.bottom - face.top
        colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        ImageDraw.Draw(image).rounded_rectangle(
            (face.left - 4, face.top + int(height * 0.52), face.right + 4, face.bottom + int(height * 0.15)),
            radius=max(1, height // 6), fill=colour)
        return np.asarray(image)
    raise ValueError(f"unknown degradation {condition!r}")


@dataclass
class Probe:
    person: str
    photo: str
    condition: str
    band: str
    embedding: np.ndarray


def band_of(quality, layout) -> str:
    """The first band (``(id, limits)``, limits named as the rules' bands name them) that holds the
    face as a scan's rules would (:meth:`matcher.policy.Band.holds`), else "general"."""
    for band, limits in layout:
        if Band(band, 0.0, 0.0, **limits).holds(quality.width, quality.sharpness, quality.brightness, quality.frontal,
                                                 quality.lower_texture):
            return band
    return "general"


def make_probes(people: dict[str, list[str]], engine: FaceEngine, layout, conditions=DEGRADATIONS,
                seed: int = 0) -> tuple[dict[str, np.ndarray], list[Probe], dict[str, int]]:
    """(clean embeddings by photo, probes, probes missed per condition: no face found)."""
    from matcher.faces.quality import measure

    rng = np.random.default_rng(seed)
    clean, probes, missed = {}, [], {condition: 0 for condition in conditions}
    for person, photos in people.items():
        for photo in photos:
            try:
                rgb = read_image(photo)
            except (OSError, MediaError):
                continue  # left out, as a photo without exactly one face is
            # A clean photo stands for a reference: only faces seen frontally count, as at enrollment.
            faces = [face for face in engine.faces(rgb) if face.box.frontal]
            if len(faces) != 1:
                continue
            clean[photo] = faces[0].embedding
            for condition in conditions:
                seen = np.ascontiguousarray(degrade(rgb, faces[0].box, condition, rng))
                found = engine.faces(seen)
                if not found:
                    missed[condition] += 1
                    continue
                face = max(found, key=lambda f: f.box.width)
                band = band_of(measure(seen, face.box, face.box.width), layout)
                probes.append(Probe(person, photo, condition, band, face.embedding))
    return clean, probes, missed


def band_rates(clean: dict[str, np.ndarray], owners: dict[str, str], probes: list[Probe], key: str,
               shipped: dict[str, float]) -> dict[str, dict]:
    """Per band (``key="band"``) or per condition: pairs, rates at the shipped thresholds, and the
    thresholds at false accepts <= 0.1 % (match) and <= 1 % (review). A probe is never compared
    with its own photo."""
    photos = list(clean)
    references = np.stack([clean[p] for p in photos])
    groups: dict[str, list[Probe]] = {}
    for probe in probes:
        groups.setdefault(getattr(probe, key), []).append(probe)
    table = {}
    for name, members in sorted(groups.items()):
        distances, same = [], []
        for probe in members:
            d = np.linalg.norm(references - probe.embedding, axis=1)
            keep = np.array([p != probe.photo for p in photos])
            distances.append(d[keep])
            same.append(np.array([owners[p] == probe.person for p in photos])[keep])
        distances, same = np.concatenate(distances), np.concatenate(same)
        different = int((~same).sum())
        row = {"probes": len(members), "same_pairs": int(same.sum()), "different_pairs": different}
        for label, threshold in shipped.items():
            row[f"at_{label}"] = rates(distances, same, threshold)
        for label, far in (("match", MATCH_MAX_FAR), ("review", REVIEW_MAX_FAR)):
            supported = different * far >= 1  # below 1/N false accepts cannot be measured
            threshold = threshold_at_far(distances, same, far) if supported else None
            row[f"{label}_at_far"] = None if threshold is None else {
                "threshold": float(np.floor(threshold * 100) / 100), **rates(distances, same, threshold)}
        table[name] = row
    return table
