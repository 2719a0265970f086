"""BlazeFace's proposals from our own ONNX model of its .tflite file: the same as OpenCV reading the
.tflite file itself, in every runtime (onnxruntime, OpenCV, PyTorch when installed), on real tiles."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from helpers import SHARED_FACES, on_canvas
from matcher.faces.blazeface import GRID, MIN_SCORE, TILE, cut_tile, default_model_path, tiles
from matcher.faces.blazeface_onnx import OUTPUTS, build_onnx_model
from matcher.faces.onnx_run import OnnxNet


def real_tiles(demo_folder) -> np.ndarray:
    """Tiles cut as propose() cuts them, from photos with faces of 40 to 400 px."""
    import cv2

    pictures = [np.asarray(Image.open(demo_folder[name]).convert("RGB")) for name in ("pair", "portrait", "news")]
    face = Image.open(demo_folder["portrait"]).convert("RGB")
    pictures += [np.asarray(on_canvas(face, width, (300, 200), size=(1600, 1200))) for width in (120, 240, 480)]
    groups = sorted((SHARED_FACES / "bbt" / "group").glob("*.jpg"))[:3]
    pictures += [np.asarray(Image.open(path).convert("RGB")) for path in groups]
    cut = []
    for rgb in pictures:
        height, width = rgb.shape[:2]
        for scale, y, x in tiles(height, width, 40):
            level = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA)
            cut.append(cut_tile(level, y, x))
    return (np.stack(cut).astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def reference(demo_folder):
    """OpenCV reading the .tflite file itself: what the scan used before."""
    import cv2

    blob = real_tiles(demo_folder)
    net = cv2.dnn.readNetFromTFLite(str(default_model_path()), engine=cv2.dnn.ENGINE_CLASSIC)
    found = []
    for start in range(0, len(blob), 8):
        net.setInput(blob[start:start + 8])
        logits, boxes = net.forward(list(OUTPUTS))
        found.append((logits.reshape(-1, GRID * GRID), boxes.reshape(-1, GRID * GRID, 16)))
    return blob, np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def check_same(run, reference) -> None:
    blob, logits, boxes = reference
    ours = [run(blob[start:start + 4]) for start in range(0, len(blob), 4)]
    our_logits = np.concatenate([o[0].reshape(-1, GRID * GRID) for o in ours])
    our_boxes = np.concatenate([o[1].reshape(-1, GRID * GRID, 16) for o in ours])
    assert len(blob) > 40 and (logits >= np.log(MIN_SCORE / (1 - MIN_SCORE))).sum() >= 5  # faces are there
    assert np.abs(our_logits - logits).max() < 1e-3
    assert np.abs(our_boxes - boxes).max() < 1e-2  # regressions reach ~185 px: 0.01 px
    threshold = np.log(MIN_SCORE / (1 - MIN_SCORE))
    assert np.array_equal(our_logits >= threshold, logits >= threshold)  # the same proposals


@pytest.mark.parametrize("runtime", ["onnxruntime", "opencv"])
def test_our_onnx_model_proposes_what_the_tflite_file_does(reference, runtime):
    if runtime == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (OpenCV runs the model instead)")
    net = OnnxNet(build_onnx_model(default_model_path()), "input", OUTPUTS, runtime=runtime)
    assert net.runtime == runtime
    check_same(net.run, reference)


def test_pytorch_proposes_what_the_tflite_file_does(reference):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (the optional [gpu] extra)")
    from matcher.faces.blazeface_torch import TorchBlazeFace

    check_same(TorchBlazeFace(default_model_path(), "cpu"), reference)
