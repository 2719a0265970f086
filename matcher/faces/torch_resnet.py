"""dlib's face ResNet run by PyTorch, on a CUDA GPU (``--device cuda``) or on the CPU.

An optional runtime (``pip install 'consent-matcher[gpu]'``): the same weights as
:mod:`matcher.faces.onnx_resnet`, the faces of a batch sent to the device as
uint8 and normalised there. Convolutions run in float32 with TF32 off: cuDNN's
default TF32 (a 10-bit mantissa) drifts about as much as half precision, which
misses the equality with dlib required of every runtime (1e-3).
"""

from __future__ import annotations

import functools

import numpy as np

from matcher.faces.base import ModelsMissing
from matcher.faces.dlib_files import dlib_model
from matcher.faces.landmarks import face_chips
from matcher.faces.resnet_weights import EMBEDDING_SIZE, folded, read_dlib_resnet
from matcher.model import Box

BATCH = 64


class DeviceUnavailable(ModelsMissing):
    """The device asked for is not there: the run stops with this message, no input is to blame."""


def torch_device(device: str):
    """PyTorch and the device, or a clear refusal when PyTorch or a CUDA GPU is missing."""
    try:
        import torch
    except ImportError:
        raise DeviceUnavailable(f"--device {device} needs PyTorch: pip install 'consent-matcher[gpu]'") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {device}: no CUDA GPU is available to PyTorch "
                                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'})")
    return torch, torch.device(device)


def _torch_module(weights):
    import torch
    import torch.nn.functional as F

    class _Block(torch.nn.Module):
        def __init__(self, down, c1, c2):
            super().__init__()
            self.down = down
            self.conv1 = torch.nn.Conv2d(c1[0].shape[1], c1[0].shape[0], 3, stride=2 if down else 1,
                                         padding=0 if down else 1)
            self.conv2 = torch.nn.Conv2d(c2[0].shape[1], c2[0].shape[0], 3, padding=1)
            for m, (w, b) in ((self.conv1, c1), (self.conv2, c2)):
                m.weight.data.copy_(torch.from_numpy(w))
                m.bias.data.copy_(torch.from_numpy(b))

        def forward(self, x):
            y = self.conv2(F.relu(self.conv1(x)))
            if not self.down:
                return F.relu(y + x)
            sc = F.avg_pool2d(x, 2, 2)
            # dlib add_prev zero-extends at the end: channels of the shortcut,
            # bottom/right border of the (smaller) block output.
            dh = sc.shape[2] - y.shape[2]
            y = F.pad(y, (0, dh, 0, dh))
            sc = F.pad(sc, (0, 0, 0, 0, 0, y.shape[1] - sc.shape[1]))
            return F.relu(y + sc)

    class DlibFaceResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            stem, blocks = folded(weights)
            self.stem = torch.nn.Conv2d(3, stem[0].shape[0], 7, stride=2)
            self.stem.weight.data.copy_(torch.from_numpy(stem[0]))
            self.stem.bias.data.copy_(torch.from_numpy(stem[1]))
            self.blocks = torch.nn.Sequential(*[_Block(*b) for b in blocks])
            self.fc = torch.nn.Linear(256, 128, bias=False)
            self.fc.weight.data.copy_(torch.from_numpy(weights["fc_w"]))
            self.register_buffer("mean", torch.from_numpy(weights["mean_rgb"]).view(1, 3, 1, 1))

        def forward(self, chips_u8_nhwc):
            # uint8 (N,150,150,3) -> dlib's input normalization, on the device.
            x = chips_u8_nhwc.permute(0, 3, 1, 2).float()
            x = (x - self.mean) * (1.0 / 256.0)
            x = x.to(self.stem.weight.dtype)
            x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
            x = self.blocks(x)
            return self.fc(x.mean(dim=(2, 3)))

    return DlibFaceResNet()


@functools.cache
def _model(device: str):
    torch, where = torch_device(device)
    weights = read_dlib_resnet(dlib_model("dlib_face_recognition_resnet_model_v1.dat"))
    return torch, where, _torch_module(weights).to(where).eval()


def embed_chips(chips: np.ndarray, device: str = "cuda") -> np.ndarray:
    """(N, 150, 150, 3) uint8 chips -> (N, 128) float32 embeddings, on ``device``."""
    if not len(chips):
        return np.empty((0, EMBEDDING_SIZE), np.float32)
    torch, where, model = _model(device)
    cudnn = torch.backends.cudnn
    tf32 = cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    out = []
    try:
        cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        with torch.inference_mode():
            for start in range(0, len(chips), BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(chips[start:start + BATCH])).to(where)
                out.append(model(batch).float().cpu().numpy())
    finally:
        cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return np.concatenate(out)


class TorchResnetEmbedder:
    name = "dlib_resnet_v1"
    dim = EMBEDDING_SIZE

    def __init__(self, device: str = "cuda"):
        self.device = device

    def embed(self, rgb: np.ndarray, boxes: list[Box]) -> np.ndarray:
        return embed_chips(face_chips(rgb, boxes), self.device)
