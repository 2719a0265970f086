"""dlib's face-recognition ResNet as numpy weights, read from its own file (no dlib needed).

``dlib_face_recognition_resnet_model_v1.dat`` (from ``face_recognition_models``,
public domain) is dlib's serialization of the network defined in dlib's
``dnn_face_recognition_ex.cpp``: the parser below reads it whole, checks the
layer sequence against that definition and ends exactly at the last byte. Our
own runtimes (:mod:`matcher.faces.onnx_resnet`, :mod:`matcher.faces.torch_resnet`)
run the same network on these weights; their embeddings equal dlib's to within
3e-6 (tests/faces/test_resnet_runtimes.py).

Network (``anet_type``)::

    input_rgb_image_sized<150>: x = (pixel - mean_rgb) / 256, planar RGB
    con<32,7,7,2,2> (no padding) -> affine -> relu -> max_pool<3,3,2,2> (no padding)
    3 x ares<32>; ares_down<64>, 3 x ares<64>; ares_down<128>, 2 x ares<128>;
    ares_down<256>, 2 x ares<256>; ares_down<256>; avg_pool_everything; fc_no_bias<128>

    ares<N>(x)      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down<N>(x) = relu(add_prev(avg_pool2x2s2(x), affine(con3x3(relu(affine(con3x3_s2_nopad(x)))))))

dlib's ``add_prev`` adds tensors of different shapes: the output has the larger
of each dimension and each operand is zero-extended at the end (extra channels,
bottom rows, right columns). The batch norms were saved in inference form
(``affine_``: per-channel scale and shift), which :func:`folded` merges into the
convolutions before them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

CHIP_SIZE = 150  # the network's input: dlib's aligned face chip, 150 x 150 RGB
EMBEDDING_SIZE = 128


class _DlibStream:
    """Reads dlib's portable serialization primitives from a bytes object.

    * integers (signed and unsigned): one control byte -- bit 0x80 = negative,
      low 4 bits = number of following bytes -- then the magnitude, little endian.
    * strings: length (integer as above) + raw bytes.
    * bool: one ASCII byte '1' / '0'.
    * float/double (scalars only): float_details = mantissa (int64) then exponent
      (int16), both as integers above; value = mantissa * 2**exponent.  (The
      comment in serialize.h says exponent first; the code writes mantissa first.)
    * tensor: int version (=2), then num_samples, k, nr, nc as integers, then the
      raw data as little-endian IEEE float32 (NOT float_details).
    * alias_tensor: int version (=1) + 4 integers (shape only, no data).
    """

    def __init__(self, data: bytes):
        self.buf = data
        self.pos = 0

    def int_(self) -> int:
        ctrl = self.buf[self.pos]
        n = ctrl & 0x0F
        if n == 0 or n > 8 or ctrl & 0x70:
            raise ValueError(f"bad dlib integer control byte 0x{ctrl:02x} at offset {self.pos}")
        v = int.from_bytes(self.buf[self.pos + 1:self.pos + 1 + n], "little")
        self.pos += 1 + n
        return -v if ctrl & 0x80 else v

    def str_(self) -> str:
        n = self.int_()
        s = self.buf[self.pos:self.pos + n].decode("ascii")
        self.pos += n
        return s

    def bool_(self) -> bool:
        c = self.buf[self.pos:self.pos + 1]
        self.pos += 1
        if c not in (b"0", b"1"):
            raise ValueError(f"bad dlib bool {c!r} at offset {self.pos - 1}")
        return c == b"1"

    def float_(self) -> float:
        if self.buf[self.pos] & 0x70:
            raise ValueError("old ASCII float format is not supported")
        mantissa = self.int_()
        exponent = self.int_()
        if exponent >= 32000:  # is_inf / is_ninf / is_nan markers
            return {32000: math.inf, 32001: -math.inf}.get(exponent, math.nan)
        return math.ldexp(mantissa, exponent)

    def tensor(self) -> np.ndarray:
        version = self.int_()
        if version != 2:
            raise ValueError(f"unexpected tensor version {version}")
        shape = tuple(self.int_() for _ in range(4))
        n = int(np.prod(shape))
        a = np.frombuffer(self.buf, dtype="<f4", count=n, offset=self.pos)
        self.pos += 4 * n
        return a.astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple:
        version = self.int_()
        if version != 1:
            raise ValueError(f"unexpected alias_tensor version {version}")
        return tuple(self.int_() for _ in range(4))


def _read_layer_details(s: _DlibStream) -> dict:
    """One layer's own serialized data (what serialize(details) wrote)."""
    name = s.str_()
    if name in ("con_4", "con_5", "con_6"):
        params = s.tensor().ravel()
        num_filters = s.int_()
        nr, nc, sy, sx, py, px = (s.int_() for _ in range(6))
        fshape = s.alias_tensor()  # (num_filters, k, nr, nc)
        s.alias_tensor()  # the bias's shape (1, num_filters, 1, 1)
        for _ in range(4):
            s.float_()  # learning-rate / weight-decay multipliers: not needed to run the network
        use_bias = s.bool_() if name in ("con_5", "con_6") else True
        if name == "con_6":
            s.bool_()  # use_relu (fused relu flag, newer dlib)
        nw = int(np.prod(fshape))
        return dict(type="con", weight=params[:nw].reshape(fshape),
                    bias=params[nw:nw + num_filters] if use_bias else np.zeros(num_filters, np.float32),
                    stride=(sy, sx), padding=(py, px), kernel=(nr, nc))
    if name in ("affine_", "affine_2"):
        params = s.tensor().ravel()  # gamma then beta
        gshape = s.alias_tensor()
        s.alias_tensor()
        mode = s.int_()  # layer_mode: 0 = CONV_MODE (per channel), 1 = FC_MODE
        if name == "affine_2":
            s.bool_()  # disabled
        n = int(np.prod(gshape))
        return dict(type="affine", gamma=params[:n], beta=params[n:2 * n], mode=mode)
    if name in ("bn_con2", "bn_fc2"):
        # Not present in this model: its trained bn_con layers were saved as affine_
        # (inference form).  dlib can load bn_ into affine_ (gamma/sqrt(var+eps),
        # beta - mean*gamma'); not implemented here because it cannot be tested.
        raise NotImplementedError(f"'{name}' layers are not supported (expected affine_)")
    if name in ("relu_", "relu_2"):
        if name == "relu_2":
            s.bool_()  # disabled
        return dict(type="relu")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, sy, sx, py, px = (s.int_() for _ in range(6))
        return dict(type=name[:-2], kernel=(nr, nc), stride=(sy, sx), padding=(py, px))
    if name == "add_prev_":
        return dict(type="add_prev")
    if name in ("fc_2", "fc_3"):
        num_outputs = s.int_()
        num_inputs = s.int_()
        params = s.tensor().ravel()
        wshape = s.alias_tensor()  # (num_inputs, num_outputs): output = input @ W
        s.alias_tensor()
        bias_mode = s.int_()  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        for _ in range(4):
            s.float_()  # learning-rate / weight-decay multipliers
        use_bias = s.bool_() if name == "fc_3" else True
        nw = int(np.prod(wshape))
        w = params[:nw].reshape(num_inputs, num_outputs)
        b = params[nw:nw + num_outputs] if (bias_mode == 0 and use_bias) else None
        return dict(type="fc", weight=w, bias=b)
    raise ValueError(f"unsupported dlib layer '{name}' at offset {s.pos}")


def _expected_layer_kinds() -> list:
    """Forward-order layer kinds of anet_type, 'tag' standing for tag1/tag2/skip1
    (those are serialized as a bare version number and have no data)."""
    def ares():
        return ["tag", "con", "affine", "relu", "con", "affine", "add_prev", "relu"]

    def ares_down():
        return ["tag", "con", "affine", "relu", "con", "affine", "tag", "tag",
                "avg_pool", "add_prev", "relu"]

    kinds = ["con", "affine", "relu", "max_pool"]
    for n_down, n_plain in ((0, 3), (1, 3), (1, 2), (1, 2), (1, 0)):
        kinds += ares_down() * n_down + ares() * n_plain
    return kinds + ["avg_pool", "fc"]


def read_dlib_resnet(path: str | Path) -> dict:
    """Parse dlib_face_recognition_resnet_model_v1.dat into numpy weights.

    File layout (dlib serializes the nested layer templates recursively, outer
    layer first, each writing its version and then its sub-network *before* its
    own data):

        int 1 (add_loss_layer version), "loss_metric_2", margin, dist_thresh
        130 ints: the version of every layer wrapper from the OUTPUT end inward:
            2 = add_layer (a computing layer), 1 = add_tag_layer / add_skip_layer,
            3 = the innermost add_layer (the one holding the input layer)
        "input_rgb_image_sized", avg_red, avg_green, avg_blue, 150, 150
        then, from the INPUT end outward, for each of the 108 computing layers:
            its details (con_4 / affine_ / relu_ / max_pool_2 / avg_pool_2 /
            add_prev_ / fc_2), then the wrapper's state: 3 bools + empty tensors
            (x_grad, cached_output, params_grad; the input one: x_grad,
            cached_output, grad_final, sample_expansion_factor).

    Returns a dict:
        mean_rgb   float32 (3,)   subtracted from the 0..255 pixel values
        scale      1/256
        stem       dict(conv_w (32,3,7,7), conv_b, aff_g, aff_b)
        blocks     list of 14 dicts: down (bool), conv1_w/b, aff1_g/b, conv2_w/b, aff2_g/b
        fc_w       float32 (128, 256)   embedding = feature @ fc_w.T
        layers     the raw forward-order layer list (for inspection)
        loss       dict(type, margin, dist_thresh)
    """
    with open(path, "rb") as f:
        s = _DlibStream(f.read())

    if s.int_() != 1:
        raise ValueError("not a dlib add_loss_layer stream")
    loss_name = s.str_()
    loss = dict(type=loss_name)
    if loss_name == "loss_metric_2":
        loss["margin"] = s.float_()
        loss["dist_thresh"] = s.float_()
    elif loss_name != "loss_metric_":
        raise ValueError(f"unexpected loss layer {loss_name}")

    wrappers = []  # outermost first
    while True:
        v = s.int_()
        wrappers.append(v)
        if v == 3:
            break
        if v not in (1, 2):
            raise ValueError(f"unexpected layer wrapper version {v}")

    in_name = s.str_()
    if in_name != "input_rgb_image_sized":
        raise ValueError(f"unexpected input layer {in_name}")
    mean_rgb = np.array([s.float_() for _ in range(3)], dtype=np.float32)
    nr, nc = s.int_(), s.int_()
    if (nr, nc) != (CHIP_SIZE, CHIP_SIZE):
        raise ValueError(f"input size {nr}x{nc}, expected 150x150")

    # Interleave the data-less tag/skip wrappers (version 1) with the computing
    # layers, in forward order.
    layers = []
    first = True
    for v in reversed(wrappers):
        if v == 1:
            layers.append(dict(type="tag"))
            continue
        layer = _read_layer_details(s)
        # add_layer bookkeeping that follows every layer's details:
        s.bool_(), s.bool_(), s.bool_()
        s.tensor(), s.tensor(), s.tensor()  # all empty in this file
        if first:
            s.int_()  # _sample_expansion_factor (version-3 input add_layer only)
            first = False
        layers.append(layer)
    if s.pos != len(s.buf):
        raise ValueError(f"{len(s.buf) - s.pos} trailing bytes")

    kinds = [l["type"] for l in layers]
    if kinds != _expected_layer_kinds():
        raise ValueError("layer sequence does not match dlib's face recognition anet_type")

    # Group into stem / residual blocks / fc following the known architecture.
    it = iter(l for l in layers if l["type"] in ("con", "affine", "avg_pool", "fc"))
    conv, aff = next(it), next(it)
    stem = dict(conv_w=conv["weight"], conv_b=conv["bias"], aff_g=aff["gamma"], aff_b=aff["beta"])
    blocks = []
    for l in it:
        if l["type"] == "avg_pool":
            if l["kernel"] == (0, 0):  # avg_pool_everything
                continue
            blocks[-1]["down"] = True
            continue
        if l["type"] == "fc":
            fc_w = np.ascontiguousarray(l["weight"].T)  # (128, 256)
            if l["bias"] is not None:
                raise ValueError("fc layer unexpectedly has a bias")
            break
        c1, a1, c2, a2 = l, next(it), next(it), next(it)
        blocks.append(dict(down=False,
                           conv1_w=c1["weight"], conv1_b=c1["bias"], stride=c1["stride"][0],
                           aff1_g=a1["gamma"], aff1_b=a1["beta"],
                           conv2_w=c2["weight"], conv2_b=c2["bias"],
                           aff2_g=a2["gamma"], aff2_b=a2["beta"]))
    for b in blocks:
        if (b["stride"] == 2) != b["down"]:
            raise ValueError("stride-2 conv without avg_pool shortcut (or vice versa)")
    for l in layers:
        # dlib's defaults: stride-2 layers have no padding, stride-1 3x3 convs pad 1.
        if l["type"] in ("con", "max_pool", "avg_pool") and l["kernel"] != (0, 0):
            want = 0 if l["stride"][0] != 1 else l["kernel"][0] // 2
            if l["padding"] != (want, want):
                raise ValueError(f"unexpected padding {l['padding']} in {l['type']}")
    return dict(mean_rgb=mean_rgb, scale=1.0 / 256.0, stem=stem, blocks=blocks,
                fc_w=fc_w, layers=layers, loss=loss)


def _fold_affine(w, b, g, beta):
    """A convolution followed by an affine layer (y = g * conv(x) + beta per channel), as one convolution.

    Done in float64 and rounded once: it differs from dlib's two float32 steps
    by about one ulp, far below the equality required of our runtimes (1e-3).
    """
    w64 = w.astype(np.float64) * g.astype(np.float64)[:, None, None, None]
    b64 = b.astype(np.float64) * g + beta
    return w64.astype(np.float32), b64.astype(np.float32)


def folded(weights: dict):
    """The network as folded convolutions: the stem, then per residual block (down, conv1, conv2)."""
    st = weights["stem"]
    stem = _fold_affine(st["conv_w"], st["conv_b"], st["aff_g"], st["aff_b"])
    blocks = []
    for b in weights["blocks"]:
        c1 = _fold_affine(b["conv1_w"], b["conv1_b"], b["aff1_g"], b["aff1_b"])
        c2 = _fold_affine(b["conv2_w"], b["conv2_b"], b["aff2_g"], b["aff2_b"])
        blocks.append((b["down"], c1, c2))
    return stem, blocks


def preprocess_chips(chips, mean_rgb) -> np.ndarray:
    """uint8 (N,150,150,3) RGB -> float32 (N,3,150,150), exactly as dlib's input layer:
    (float(pixel) - float32 mean) / 256."""
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
        raise ValueError(f"expected uint8 chips (N,150,150,3), got {chips.dtype} {chips.shape}")
    x = chips.astype(np.float32)
    x -= mean_rgb  # float32 subtraction, the same rounding as dlib
    x *= np.float32(1.0 / 256.0)  # exact (a power of two)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
