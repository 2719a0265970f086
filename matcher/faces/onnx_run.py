"""Running our ONNX models: onnxruntime when it is installed, else OpenCV's DNN module.

Measured on this project's networks (one core): onnxruntime takes about half
OpenCV's time on BlazeFace's depthwise convolutions (5-7 against 11-13 ms a
192 px tile) and 30 % less on the ResNet (7-9 against 10-12 ms a face), with
the same outputs (tests/faces/test_resnet_runtimes.py, test_proposals.py).
OpenCV stays the fallback: it is a dependency anyway.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


class OnnxNet:
    """One ONNX model, ready to run on batches: ``run(blob) -> [outputs]`` (float32)."""

    def __init__(self, onnx: bytes, input_name: str, outputs: tuple[str, ...], runtime: str = "auto"):
        """``runtime``: onnxruntime when installed ("auto"), or "opencv", or "onnxruntime"."""
        self.input_name, self.outputs = input_name, outputs
        try:
            if runtime == "opencv":
                raise ImportError("OpenCV asked for")
            import onnxruntime
        except ImportError:
            if runtime == "onnxruntime":
                raise
            self.runtime, self._run = "opencv", _opencv(onnx, outputs)
            return
        options = onnxruntime.SessionOptions()
        # One thread: scans run one worker process per core already.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings of its own would reach the user's terminal
        session = onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self.runtime = "onnxruntime"
        self._run = lambda blob: session.run(list(outputs), {input_name: blob})

    def run(self, blob: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out, dtype=np.float32) for out in self._run(np.ascontiguousarray(blob, dtype=np.float32))]


def _opencv(onnx: bytes, outputs: tuple[str, ...]):
    import cv2

    # OpenCV 5.0 ignores the engine asked for when reading a model from memory (and
    # takes a Python bytes object for a path): the classic engine is read from a
    # private temporary file, deleted at once.
    handle, path = tempfile.mkstemp(suffix=".onnx", prefix="consent-matcher-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(onnx)
        net = cv2.dnn.readNetFromONNX(path, cv2.dnn.ENGINE_CLASSIC)
    finally:
        os.remove(path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def run(blob: np.ndarray) -> list[np.ndarray]:
        net.setInput(blob)
        found = net.forward(list(outputs))
        return list(found) if len(outputs) > 1 else [found[0] if isinstance(found, (list, tuple)) else found]

    return run
