"""Embeddings per second of dlib's ResNet in each runtime, on the same real faces.

    .venv/bin/python bench/embeddings.py [--faces ../shared/faces] [--runs 5]

Chips (dlib's aligned 150 px faces) of lfw10's photos are embedded at batch 1,
8 and 32 by: dlib itself (the reference), our ONNX model in onnxruntime and in
OpenCV's DNN module (one thread each, as a scan worker runs), and PyTorch on
the CPU (one thread) and on a CUDA GPU when present. Prints the median of the
runs, faces per second and ms per face, and each runtime's largest distance
from dlib's embeddings.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image


def chips(faces: Path, count: int = 64) -> np.ndarray:
    from matcher.faces.hog import HogDetector
    from matcher.faces.landmarks import face_chips

    detector, cut = HogDetector(), []
    for path in sorted(faces.glob("lfw10/*/*.jpg")):
        rgb = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))
        boxes = detector.detect(rgb)
        if boxes:
            cut.append(face_chips(rgb, boxes[:1])[0])
        if len(cut) == count:
            break
    return np.stack(cut)


def runtimes():
    """(name, embed(chips) -> (n, 128))."""
    import cv2

    cv2.setNumThreads(1)
    from matcher.faces.dlib_files import dlib_model
    from matcher.faces.onnx_run import OnnxNet
    from matcher.faces.resnet_onnx import build_onnx_model
    from matcher.faces.resnet_weights import preprocess_chips, read_dlib_resnet

    import dlib

    descriptor = dlib.face_recognition_model_v1(str(dlib_model("dlib_face_recognition_resnet_model_v1.dat")))
    weights = read_dlib_resnet(dlib_model("dlib_face_recognition_resnet_model_v1.dat"))
    found = [("dlib", lambda c: np.array([np.asarray(descriptor.compute_face_descriptor(chip)) for chip in c]))]
    for runtime in ("onnxruntime", "opencv"):
        if runtime == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
            continue
        net = OnnxNet(build_onnx_model(weights), "input", ("embedding",), runtime=runtime)
        found.append((f"ours, {runtime}", lambda c, net=net: net.run(preprocess_chips(c, weights["mean_rgb"]))[0]))
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)
        from matcher.faces.torch_resnet import embed_chips as torch_embed

        found.append(("ours, PyTorch CPU", lambda c: torch_embed(c, "cpu")))
        if torch.cuda.is_available():
            found.append((f"ours, PyTorch {torch.cuda.get_device_name(0)}", lambda c: torch_embed(c, "cuda")))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/faces"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    faces = chips(args.faces)
    print(f"{len(faces)} face chips from lfw10")
    reference = None
    for name, embed in runtimes():
        embed(faces[:8])  # warm-up: models load, caches fill
        row = []
        for batch in (1, 8, 32):
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                for start in range(0, 32, batch):
                    embed(faces[start:start + batch])
                times.append((time.perf_counter() - started) / 32)
            row.append(statistics.median(times))
        vectors = embed(faces)
        reference = vectors if reference is None else reference
        drift = float(np.linalg.norm(vectors - reference, axis=1).max())
        print(f"{name:28} " + "  ".join(f"batch {b:2d}: {1 / t:7.1f}/s ({1000 * t:6.1f} ms)" for b, t in
                                        zip((1, 8, 32), row)) + f"  max drift from dlib {drift:.1e}")


if __name__ == "__main__":
    main()
