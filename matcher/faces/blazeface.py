"""Where faces may be: cheap face proposals from MediaPipe's BlazeFace (full range), through OpenCV.

dlib's HOG detector spends most of a scan's time searching a phone photo
upsampled to 3200 px for faces of 100 px. BlazeFace, a small convolutional
detector, finds the same faces on 192 px tiles of the photo shrunk so that
the smallest face of interest spans 16 px. :class:`BlazeFaceHogDetector` then
runs HOG only on a small crop around each proposal, so the faces kept, their
boxes and their embeddings stay HOG's.

The model (``models/blazeface/``) is read from its .tflite file, written as our
own ONNX model (:mod:`.blazeface_onnx`) and run by onnxruntime (OpenCV's DNN
module where it is missing), or by PyTorch on a GPU (:mod:`.blazeface_torch`).
It is loaded on first use, once per process.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matcher.faces.base import ModelsMissing
from matcher.faces.blazeface_onnx import OUTPUTS, build_onnx_model
from matcher.faces.geometry import box_from_rect, centre_within, overlap, same_face, upright
from matcher.faces.hog import HOG_WINDOW, frontal_detector
from matcher.faces.onnx_run import OnnxNet
from matcher.model import Box

MODEL_FILE = "face_detection_full_range.tflite"
TILE = 192  # the network's input side
GRID = 48  # its output: one anchor per 4x4 pixels of the input
# Measured on LFW faces pasted on a grey 192 px tile: 95 % found at 16 px,
# all from 20 px; the overlap between tiles covers the faces up to LEVEL_STEP times this.
# (The network is convolutional: whole levels of a photo can go through it at once. On
# phone photos that took 15 % less time, but it lost 10 of 140 faces that tiles find at
# 45-60 px in wide shots, bench/conditions.py small-45 and small-60: tiles stay.)
MIN_FACE_IN_TILE = 16
# Each level of the picture is this many times smaller than the one before. The network sees
# faces far larger than 16 px as well, so a level may take faces of 16-40 px, not 16-32: a
# phone photo's second level is then 256x192 (two tiles), not 320x240 (four), 16 tiles in
# all instead of 18. On the throughput corpus: 1692 tiles instead of 1880, proposals 11.4 ->
# 10.3 s, the same 196 faces. bench/conditions.py (small-45/60, crowd, tilt-25/40) found every
# enrolled face with the tiles spread evenly (2.5 with a short last step lost one at small-45).
LEVEL_STEP = 2.5
# A low score keeps doubtful proposals: HOG decides. On the throughput corpus
# (bench/throughput.py) 0.35 proposed all 194 faces HOG finds, 0.5 missed one.
MIN_SCORE = 0.35
# Tiles per forward pass: onnxruntime measured fastest per tile near 4 (activations stay in cache).
BATCH = 4


class ProposalModelMissing(ModelsMissing):
    pass


@dataclass(frozen=True)
class Proposal:
    score: float
    left: float
    top: float
    right: float
    bottom: float
    roll: float = 0.0  # the eye line's tilt, degrees counter-clockwise as the picture shows it

    @property
    def side(self) -> float:
        return max(self.right - self.left, self.bottom - self.top)


def default_model_path() -> Path:
    """``models/blazeface/`` beside the package in a checkout, else in the install's share/."""
    checkout = Path(__file__).resolve().parents[2] / "models" / "blazeface" / MODEL_FILE
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "consent-matcher" / "models" / "blazeface" / MODEL_FILE


@functools.cache
def _network(path: Path, device: str = "cpu"):
    """The network (our ONNX model of the .tflite file, or PyTorch's on a GPU) and its anchors."""
    if not path.is_file():
        raise ProposalModelMissing(f"face proposal model missing: {path}")
    if device == "cpu":
        net = OnnxNet(build_onnx_model(path), "input", OUTPUTS)
        run = net.run
    else:
        from matcher.faces.blazeface_torch import TorchBlazeFace  # PyTorch only where asked for

        run = TorchBlazeFace(path, device)
    rows, cols = np.mgrid[0:GRID, 0:GRID]
    anchors = np.stack([(cols.ravel() + 0.5), (rows.ravel() + 0.5)], axis=1).astype(np.float32) * (TILE / GRID)
    return run, anchors


def tiles(height: int, width: int, min_face: float) -> list[tuple[float, int, int]]:
    """The tiles to search: ``(scale, y, x)``, the level's scale and the tile's corner in it.

    Level 1 shrinks the image so that ``min_face`` spans MIN_FACE_IN_TILE px;
    each next level shrinks it LEVEL_STEP times more, until the whole image fits
    one tile. Tiles of a level overlap by LEVEL_STEP times the smallest face, so
    each face up to that size lies wholly inside one of them; larger ones are
    the next level's.
    """
    out = []
    scale = MIN_FACE_IN_TILE / min_face
    stride = TILE - round(LEVEL_STEP * MIN_FACE_IN_TILE)
    while True:
        last = scale * max(height, width) <= TILE
        if last:
            scale = TILE / max(height, width)
        level_h, level_w = max(1, round(height * scale)), max(1, round(width * scale))
        ys = _starts(level_h, stride)
        xs = _starts(level_w, stride)
        out += [(scale, y, x) for y in ys for x in xs]
        if last:
            # And the whole image at half a tile, centred: a face filling the picture (an avatar, a
            # tight crop) is too large for the network in the levels above, which it was not
            # trained to see without a margin. Negative corners: the tile starts before the level.
            scale = TILE / 2 / max(height, width)
            level_h, level_w = max(1, round(height * scale)), max(1, round(width * scale))
            return out + [(scale, -((TILE - level_h) // 2), -((TILE - level_w) // 2))]
        scale /= LEVEL_STEP


def _starts(length: int, stride: int) -> list[int]:
    """Tile corners along one side: as few tiles as overlap by at least TILE - ``stride``, spread
    evenly (the most overlap that count of tiles allows, rather than a short last step)."""
    count = 1 + max(0, -(-(length - TILE) // stride))
    if count == 1:
        return [0]
    return [round(i * (length - TILE) / (count - 1)) for i in range(count)]


def cut_tile(level: np.ndarray, y: int, x: int) -> np.ndarray:
    """The TILE x TILE tile of a level at corner (``y``, ``x``), black where it runs past the level."""
    tile = np.zeros((TILE, TILE, 3), np.uint8)
    top, left = max(0, y), max(0, x)
    part = level[top:y + TILE, left:x + TILE]
    tile[top - y:top - y + part.shape[0], left - x:left - x + part.shape[1]] = part
    return tile


def propose(rgb: np.ndarray, min_face: float, min_score: float = MIN_SCORE,
            model: Path | None = None, device: str = "cpu") -> list[Proposal]:
    """Possible faces of at least ``min_face`` pixels in an RGB image, in its coordinates."""
    import cv2

    run, anchors = _network(model or default_model_path(), device)
    height, width = rgb.shape[:2]
    batch, origins = [], []
    levels: dict[float, np.ndarray] = {}
    previous = rgb
    for scale, y, x in tiles(height, width, max(1.0, min_face)):
        if scale not in levels:
            # Each level from the one before (a quarter of its pixels or fewer): cheaper than from the photo.
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            previous = levels[scale] = cv2.resize(previous, size, interpolation=cv2.INTER_AREA)
        batch.append(cut_tile(levels[scale], y, x))
        origins.append((y, x, scale))
    blob = (np.stack(batch).astype(np.float32) * (1 / 127.5) - 1.0).transpose(0, 3, 1, 2)
    outputs = [run(blob[start:start + BATCH]) for start in range(0, len(blob), BATCH)]
    logits = np.concatenate([found[0].reshape(-1, GRID * GRID) for found in outputs])
    boxes = np.concatenate([found[1].reshape(-1, GRID * GRID, 16) for found in outputs])
    found = []
    min_logit = float(np.log(min_score / (1 - min_score)))
    for index, (y, x, scale) in enumerate(origins):
        for anchor in np.nonzero(logits[index] >= min_logit)[0]:
            dx, dy, w, h = boxes[index, anchor, :4]
            cx = (anchors[anchor, 0] + dx + x) / scale
            cy = (anchors[anchor, 1] + dy + y) / scale
            w, h = w / scale, h / scale
            score = float(1 / (1 + np.exp(-logits[index, anchor])))
            # Keypoints 0 and 1: the right and left eye (the person's), as offsets from the anchor.
            right_eye, left_eye = boxes[index, anchor, 4:6], boxes[index, anchor, 6:8]
            roll = float(np.degrees(np.arctan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])))
            found.append(Proposal(score, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, roll))
    return _suppress(found)


def _suppress(proposals: list[Proposal], max_overlap: float = 0.3) -> list[Proposal]:
    """Keep the best of proposals that overlap (the same face seen by several anchors or tiles)."""
    kept: list[Proposal] = []
    for candidate in sorted(proposals, key=lambda p: -p.score):
        if all(overlap(candidate, other) < max_overlap for other in kept):
            kept.append(candidate)
    return kept


# HOG looks at a crop where the proposed face spans this many pixels:
# comfortably above its window, on a crop of about 220 px.
PROPOSAL_SIDE = 110
# A dark shot (a phone at night: a quarter of the light, sensor noise) hides from HOG faces
# BlazeFace proposes with confidence. Where HOG finds nothing on a crop darker than this (mean
# of 255) around a proposal at least this sure, it looks again at the crop smoothed and
# stretched (only then: a face plain HOG sees keeps its box). Measured with bench/conditions.py
# low-light, where BlazeFace proposed every face lost at 0.78-0.94 and their crops average 8-25
# (around the 150 faces HOG finds in lfw10 and bbt: 51-167, 5 % under 66).
DARK_BELOW = 50
DARK_RESCUE_SCORE = 0.7
# HOG's window is upright: a face whose eye line BlazeFace sees tilted more than this is
# turned upright on its crop first (measured with bench/conditions.py: tilt-25, tilt-40).
UPRIGHT_BEYOND = 12.0
# A proposal this sure where HOG, a detector of whole frontal faces, finds nothing is kept as a
# face not seen frontally (Box.frontal False): a lower face behind a mask or a hand, a head
# turned away. Its box is HOG's as it would be: the proposal's centre, NOT_FRONTAL_SIDE of its
# side (HOG's boxes measured against the proposals of 105 faces both saw: 0.94 wide, centres
# within 0.06 of a side). bench/conditions.py covered: BlazeFace proposed 46 of the 48 enrolled
# faces at 0.6 or more, of which HOG saw 2. The rules give such faces their own band (data/policy.toml).
NOT_FRONTAL_SCORE = 0.6
NOT_FRONTAL_SIDE = 0.94


class BlazeFaceHogDetector:
    """HOG on a crop around each BlazeFace proposal, the proposal zoomed to PROPOSAL_SIDE px:
    the same faces and boxes as whole-image HOG, several times faster on large photos.

    ``min_face``: the smallest face of interest, in pixels of the original (None:
    what whole-image HOG reaches, ~40 px of a copy of at most ``detect_max_side``).
    """

    def __init__(self, detect_max_side: int = 1600, min_face: int | None = None, model: Path | None = None,
                 device: str = "cpu"):
        self.detect_max_side = detect_max_side
        self.min_face = min_face
        self.model = model
        self.device = device

    def decode_side(self, height: int, width: int) -> int:
        # Proposals need little resolution, and HOG then runs on crops zoomed to the face.
        return min(max(height, width), self.detect_max_side)

    def smallest_face(self, height: int, width: int, scale: float = 1.0) -> float:
        """The smallest face searched for, in pixels of this image (``scale``: original pixels per pixel)."""
        if self.min_face is not None:
            return self.min_face / scale
        return HOG_WINDOW / 2 * max(1.0, max(height, width) / self.detect_max_side)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Box]:
        height, width = rgb.shape[:2]
        boxes: list[Box] = []
        not_frontal: list[Box] = []
        for proposal in propose(rgb, self.smallest_face(height, width, scale), model=self.model, device=self.device):
            # The eye line is a rough guess: where turning finds nothing, HOG looks as it stands.
            found = ((abs(proposal.roll) > UPRIGHT_BEYOND and _hog_upright(rgb, proposal))
                     or _hog_around(rgb, proposal, dark_path=proposal.score >= DARK_RESCUE_SCORE))
            _add_new(boxes, found, same_face)  # a face found again from a neighbouring proposal is kept once
            if proposal.score >= NOT_FRONTAL_SCORE:
                # Kept unless HOG found this face (its crop may hold a neighbour's face HOG sees).
                not_frontal.append(_box_of_proposal(proposal, rgb.shape))
        return _add_new(boxes, not_frontal, centre_within)


def _add_new(boxes: list[Box], found: list[Box], same) -> list[Box]:
    """``boxes`` with each of ``found`` that is not the ``same`` face as one already there."""
    for box in found:
        if not any(same(box, other) for other in boxes):
            boxes.append(box)
    return boxes


def _box_of_proposal(proposal: Proposal, shape: tuple) -> Box:
    """The box HOG would give the proposed face, not seen frontally (see NOT_FRONTAL_SCORE)."""
    height, width = shape[:2]
    half = NOT_FRONTAL_SIDE * proposal.side / 2
    cx, cy = (proposal.left + proposal.right) / 2, (proposal.top + proposal.bottom) / 2
    angle = proposal.roll if abs(proposal.roll) > UPRIGHT_BEYOND else 0.0
    return Box(max(0, round(cy - half)), min(width, round(cx + half)), min(height, round(cy + half)),
               max(0, round(cx - half)), angle, frontal=False)


def _hog_around(rgb: np.ndarray, proposal: Proposal, dark_path: bool = False) -> list[Box]:
    """HOG on the crop around an upright proposal, zoomed so the face spans PROPOSAL_SIDE px.

    ``dark_path``: where HOG finds nothing on a dark crop (see DARK_BELOW), it looks again at
    the crop smoothed and stretched to the full range (:func:`lit`)."""
    import cv2

    height, width = rgb.shape[:2]
    side = proposal.side
    centre_x, centre_y = (proposal.left + proposal.right) / 2, (proposal.top + proposal.bottom) / 2
    top, left = max(0, int(centre_y - side)), max(0, int(centre_x - side))
    bottom, right = min(height, int(centre_y + side)), min(width, int(centre_x + side))
    if bottom - top < 2 or right - left < 2:
        return []
    zoom = PROPOSAL_SIDE / side
    crop = cv2.resize(rgb[top:bottom, left:right], None, fx=zoom, fy=zoom,
                      interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    rects = frontal_detector()(crop, 0)
    if not rects and dark_path and crop.mean() < DARK_BELOW:
        rects = frontal_detector()(lit(crop), 0)
    return [box_from_rect(rect, zoom, rgb.shape, top, left) for rect in rects]


def lit(crop: np.ndarray) -> np.ndarray:
    """A dark, noisy crop made readable for HOG: smoothed (sensor noise is most of what varies
    there), then its 1st to 99th percentiles stretched over the full range."""
    import cv2

    smooth = cv2.GaussianBlur(crop, (0, 0), 1.0).astype(np.float32)
    low, high = np.percentile(smooth, (1, 99))
    return np.clip((smooth - low) * (255 / max(1.0, high - low)), 0, 255).astype(np.uint8)


def _hog_upright(rgb: np.ndarray, proposal: Proposal) -> list[Box]:
    """HOG on the crop around a tilted proposal, turned upright and zoomed as :func:`_hog_around`'s:
    boxes are the upright faces' squares, centred where the faces are, turned by the roll."""
    side = proposal.side
    zoom = PROPOSAL_SIDE / side
    centre = ((proposal.left + proposal.right) / 2, (proposal.top + proposal.bottom) / 2)
    crop_side = max(2, round(2 * side))
    crop, back = upright(rgb, centre, proposal.roll, crop_side)
    import cv2

    crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    boxes = []
    for rect in frontal_detector()(crop, 0):
        x = (rect.left() + rect.right()) / 2 / zoom
        y = (rect.top() + rect.bottom()) / 2 / zoom
        half = (rect.right() - rect.left()) / 2 / zoom
        cx, cy = back @ np.array([x, y, 1.0])
        height, width = rgb.shape[:2]
        boxes.append(Box(max(0, round(cy - half)), min(width, round(cx + half)), min(height, round(cy + half)),
                         max(0, round(cx - half)), proposal.roll))
    return boxes
