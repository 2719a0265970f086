"""dlib's face ResNet run by OpenCV's DNN module: the same embeddings as dlib, about ten times cheaper.

dlib's prebuilt wheel has no BLAS: its ResNet takes ~0.1 s a face. The same
weights (:mod:`matcher.faces.resnet_weights`), written as an ONNX model in
memory (:mod:`matcher.faces.onnx_writer`) and run by ``cv2.dnn`` (already a
dependency), take ~11 ms of one core, and the faces of an image go in one
batch. Equality with dlib is tested on real faces (within 1e-3; measured 3e-6).
"""

from __future__ import annotations

import functools
import os
import tempfile

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.landmarks import face_chips
from matcher.faces.onnx_writer import build_onnx_model
from matcher.faces.resnet_weights import EMBEDDING_SIZE, preprocess_chips, read_dlib_resnet
from matcher.model import Box

BATCH = 32  # faces per forward pass (more gains nothing measurable on CPU)


@functools.cache
def _network():
    """The network in OpenCV's classic DNN engine, built once per process from dlib's weights."""
    import cv2

    weights = read_dlib_resnet(dlib_model("dlib_face_recognition_resnet_model_v1.dat"))
    onnx = build_onnx_model(weights)
    # OpenCV 5.0 ignores the engine asked for when reading a model from memory (and
    # takes a Python bytes object for a path): read the classic engine from a
    # private temporary file, deleted at once. The classic engine's Winograd
    # convolutions measured 11 ms of CPU a face against the new engine's 16.
    handle, path = tempfile.mkstemp(suffix=".onnx", prefix="consent-matcher-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(onnx)
        net = cv2.dnn.readNetFromONNX(path, cv2.dnn.ENGINE_CLASSIC)
    finally:
        os.remove(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net, weights["mean_rgb"]


def embed_chips(chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 embeddings."""
    if not len(chips):
        return np.empty((0, EMBEDDING_SIZE), np.float32)
    net, mean_rgb = _network()
    blob = preprocess_chips(chips, mean_rgb)
    out = []
    for start in range(0, len(blob), BATCH):
        net.setInput(np.ascontiguousarray(blob[start:start + BATCH]))
        out.append(np.asarray(net.forward(), dtype=np.float32).reshape(-1, EMBEDDING_SIZE))
    return np.concatenate(out)


class OpenCVResnetEmbedder:
    """dlib's ResNet embeddings (the same ``name``: they are the same vectors), run by OpenCV."""

    name = "dlib_resnet_v1"
    dim = EMBEDDING_SIZE

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        return embed_chips(face_chips(rgb, boxes))
