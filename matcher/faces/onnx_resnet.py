"""dlib's face ResNet run as our own ONNX model: the same embeddings as dlib, about ten times cheaper.

dlib's prebuilt wheel has no BLAS: its ResNet takes ~0.1 s a face. The same
weights (:mod:`matcher.faces.resnet_weights`), written as an ONNX model in
memory (:mod:`matcher.faces.resnet_onnx`) and run by onnxruntime (or OpenCV's
DNN module where onnxruntime is missing: :mod:`matcher.faces.onnx_run`), take
7-12 ms of one core, and the faces of an image go in one batch. Equality with
dlib is tested on real faces (within 1e-3; measured 3e-6).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.dlib_files import dlib_model
from matcher.faces.landmarks import face_chips
from matcher.faces.model_cache import cached_bytes, key_of, source_key
from matcher.faces.onnx_proto import model_bytes
from matcher.faces.onnx_run import OnnxNet
from matcher.faces.resnet_onnx import build_onnx_model
from matcher.faces.resnet_weights import EMBEDDING_SIZE, preprocess_chips, read_dlib_resnet
from matcher.model import Box

BATCH = 8  # faces per forward pass (onnxruntime is fastest per face near this)


@functools.cache
def _network() -> tuple[OnnxNet, np.ndarray]:
    """The network, built from dlib's own weights file once per machine (kept in the model cache)
    and loaded once per process."""
    weights_file = dlib_model("dlib_face_recognition_resnet_model_v1.dat")

    def build() -> bytes:
        weights = read_dlib_resnet(weights_file)
        return weights["mean_rgb"].astype("<f4").tobytes() + build_onnx_model(weights)

    converters = source_key(model_bytes, build_onnx_model, read_dlib_resnet)
    kept = cached_bytes("dlib-resnet-v1.onnx", key_of(weights_file, converters), build)
    mean_rgb = np.frombuffer(kept[:12], "<f4").astype(np.float32)  # the input layer's mean, then the model
    return OnnxNet(kept[12:], "input", ("embedding",)), mean_rgb


def embed_chips(chips: np.ndarray) -> np.ndarray:
    """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 embeddings."""
    if not len(chips):
        return np.empty((0, EMBEDDING_SIZE), np.float32)
    net, mean_rgb = _network()
    blob = preprocess_chips(chips, mean_rgb)
    return np.concatenate([net.run(blob[start:start + BATCH])[0].reshape(-1, EMBEDDING_SIZE)
                           for start in range(0, len(blob), BATCH)])


class OnnxResnetEmbedder:
    """dlib's ResNet embeddings (the same ``name``: they are the same vectors), run as our ONNX model."""

    name = "dlib_resnet_v1"
    dim = EMBEDDING_SIZE

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        return embed_chips(face_chips(rgb, boxes))
