"""MediaPipe BlazeFace (full range) as a PyTorch module, built from the .tflite file's own weights.

For ``--device cuda`` (the optional [gpu] extra). Same convention as the ONNX path
(matcher/faces/blazeface_onnx.py):
input float32 (N, 3, 192, 192), RGB scaled to [-1, 1]; outputs
("reshaped_classifier_face_4" (N, 2304, 1) logits, "reshaped_regressor_face_4" (N, 2304, 16)).

torch is imported lazily (only when a network is built). The module is a straight
interpretation of the lowered graph (:func:`matcher.faces.tflite.lower_to_nchw`): 89 convolutions
(TF SAME padding made explicit; the stride-2 ones pad 0 before / 1 after), 47 ReLU,
23 adds, 8 channel pads, 4 max pools, 3 bilinear 2x upsamplings (half-pixel centres),
and the two NHWC flattenings.

    net = TorchBlazeFace(path, device="cpu")        # or "cuda"
    logits, boxes = net(blob)                       # numpy in, numpy out

On CUDA, TF32 is switched off around the forward pass (cuDNN's default TF32 convolutions
on Ampere/Hopper would drift at ~1e-3 relative); allow_tf32=True keeps it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matcher.faces.blazeface_onnx import OUTPUTS
from matcher.faces.tflite import lower_to_nchw, read_tflite
from matcher.faces.torch_resnet import torch_device


def build_module(path: Path):
    """A torch.nn.Module: forward(x (N,3,192,192) float tensor) -> (logits (N,2304,1), boxes (N,2304,16))."""
    import torch
    import torch.nn.functional as F

    steps, input_name, outputs = lower_to_nchw(read_tflite(path))
    missing = [o for o in OUTPUTS if o not in outputs]
    if missing:
        raise ValueError(f"model lacks outputs {missing}")

    class BlazeFace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.ParameterList()
            self.plan = []  # (kind, out, inputs, attrs with parameter indices)
            for s in steps:
                a = dict(s.attrs)
                if s.kind == "conv":
                    self.weights.append(torch.nn.Parameter(torch.from_numpy(a.pop("weight").copy()),
                                                           requires_grad=False))
                    a["w"] = len(self.weights) - 1
                    b = a.pop("bias")
                    if b is not None:
                        self.weights.append(torch.nn.Parameter(torch.from_numpy(b.copy()), requires_grad=False))
                        a["b"] = len(self.weights) - 1
                    else:
                        a["b"] = None
                    pt, pl, pb, pr = a["pads"]
                    if pt == pb and pl == pr:
                        a["conv_padding"], a["pre_pad"] = (pt, pl), None
                    else:  # asymmetric (TF SAME with stride 2): pad explicitly, F.pad order (left, right, top, bottom)
                        a["conv_padding"], a["pre_pad"] = (0, 0), (pl, pr, pt, pb)
                elif s.kind == "resize":
                    if a["align_corners"]:
                        raise NotImplementedError("align_corners resize")
                    if not a["half_pixel_centers"]:
                        # TF's legacy (asymmetric) mapping: not what torch's bilinear computes.
                        raise NotImplementedError("resize without half_pixel_centers")
                elif s.kind == "pad":
                    # F.pad wants (last-axis before, after, previous axis ...)
                    a["fpad"] = tuple(v for ax in (3, 2, 1, 0) for v in (a["before"][ax], a["after"][ax]))
                self.plan.append((s.kind, s.out, s.inputs, a))
            self.input_name = input_name

        def forward(self, x):
            env = {self.input_name: x}
            W = self.weights
            for kind, out, ins, a in self.plan:
                v = env[ins[0]]
                if kind == "conv":
                    if a["pre_pad"] is not None:
                        v = F.pad(v, a["pre_pad"])
                    v = F.conv2d(v, W[a["w"]], None if a["b"] is None else W[a["b"]], a["stride"],
                                 a["conv_padding"], a["dilation"], a["groups"])
                elif kind == "relu":
                    v = F.relu(v)
                elif kind == "add":
                    v = v + env[ins[1]]
                elif kind == "maxpool":
                    v = F.max_pool2d(v, a["kernel"], a["stride"])
                elif kind == "pad":
                    v = F.pad(v, a["fpad"])
                elif kind == "resize":
                    v = F.interpolate(v, size=a["size"], mode="bilinear", align_corners=False)
                elif kind == "flatten_nhwc":
                    v = v.permute(0, 2, 3, 1).reshape(v.shape[0], -1, a["channels"])
                env[out] = v
            return env[OUTPUTS[0]], env[OUTPUTS[1]]

    return BlazeFace().eval()


class TorchBlazeFace:
    """numpy in, numpy out; device "cpu" or "cuda" (or a torch.device)."""

    def __init__(self, path: Path, device: str = "cuda", allow_tf32: bool = False, channels_last: bool = True):
        torch, self.device = torch_device(device)  # a clear refusal when PyTorch or the GPU is missing
        self.torch = torch
        self.allow_tf32 = allow_tf32
        # channels_last (NHWC in memory): ~1/3 less time on CPU here (oneDNN's depthwise kernels).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = build_module(path).to(self.device).to(memory_format=self.memory_format)

    def __call__(self, blob: np.ndarray):
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)).to(self.device)
        x = x.contiguous(memory_format=self.memory_format)
        cuda = self.device.type == "cuda"
        if cuda and not self.allow_tf32:
            saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            with torch.inference_mode():
                logits, boxes = self.module(x)
        finally:
            if cuda and not self.allow_tf32:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
        return logits.cpu().numpy(), boxes.cpu().numpy()
