"""A small reader for TensorFlow Lite model files (.tflite), to run BlazeFace's weights our own way.

A .tflite file is a FlatBuffer whose schema is tensorflow/lite/schema/schema.fbs
(root type ``tflite.Model``, file identifier ``TFL3``). This module walks the
FlatBuffer by hand (no flatbuffers / tflite / tensorflow package) and returns
plain Python objects: tensors (shape, type, buffer data as numpy, quantization),
operators (opcode name, inputs, outputs, decoded builtin options for the ops
listed in _OPTION_FIELDS), and the graph's inputs and outputs.

FlatBuffer layout, as far as needed here (all little endian):
  * byte 0: uint32 offset to the root table; bytes 4..8: the file identifier.
  * a table at position t starts with an int32 soffset; its vtable is at
    t - soffset: uint16 vtable size, uint16 table size, then one uint16 per
    field: the field's offset from t, 0 when the field is absent (default).
  * scalar fields are stored inline; table / vector / string fields hold a
    uint32 offset relative to the field's own position.
  * vector: uint32 count, then elements (tables: one uint32 relative offset each).
  * string: uint32 length, bytes, NUL.
  * a union field N is two fields: N (ubyte type tag) and N+1 (table offset).

Field ids (the order of declaration in schema.fbs, counting a union as 2):
  Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4,
         metadata_buffer 5, metadata 6, signature_defs 7
  OperatorCode: deprecated_builtin_code 0 (byte), custom_code 1, version 2,
         builtin_code 3 (int32; used when >= 127, i.e. deprecated == 127)
  SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4
  Tensor: shape 0, type 1, buffer 2, name 3, quantization 4, is_variable 5,
          sparsity 6, shape_signature 7, has_rank 8
  QuantizationParameters: min 0, max 1, scale 2, zero_point 3,
          details_type 4, details 5, quantized_dimension 6
  Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3,
          builtin_options 4, custom_options 5, custom_options_format 6, ...
  Buffer: data 0, offset 1, size 2
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# BuiltinOperator enum (schema.fbs), the values this reader names.  Others are
# reported as "BUILTIN_<n>".
BUILTIN_OPS = {
    0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
    5: "DEPTH_TO_SPACE", 6: "DEQUANTIZE", 9: "FULLY_CONNECTED", 14: "LOGISTIC", 17: "MAX_POOL_2D",
    18: "MUL", 19: "RELU", 21: "RELU6", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX",
    28: "TANH", 32: "CUSTOM", 34: "PAD", 39: "TRANSPOSE", 40: "MEAN", 41: "SUB", 43: "SQUEEZE",
    45: "STRIDED_SLICE", 53: "CAST", 54: "PRELU", 60: "PADV2", 97: "RESIZE_NEAREST_NEIGHBOR",
    98: "LEAKY_RELU", 114: "QUANTIZE", 117: "HARD_SWISH", 124: "DENSIFY",
}

# TensorType enum -> numpy dtype
TENSOR_TYPES = {
    0: ("FLOAT32", np.float32), 1: ("FLOAT16", np.float16), 2: ("INT32", np.int32),
    3: ("UINT8", np.uint8), 4: ("INT64", np.int64), 5: ("STRING", None), 6: ("BOOL", np.bool_),
    7: ("INT16", np.int16), 8: ("COMPLEX64", np.complex64), 9: ("INT8", np.int8),
    10: ("FLOAT64", np.float64),
}

PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}

# Builtin options tables, by operator: (field name, flatbuffer scalar format, default), in field-id order.
# Padding and ActivationFunctionType are byte enums ("b").
_OPTION_FIELDS = {
    "CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                ("fused_activation_function", "b", 0), ("dilation_w_factor", "i", 1),
                ("dilation_h_factor", "i", 1)],
    "DEPTHWISE_CONV_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                          ("depth_multiplier", "i", 0), ("fused_activation_function", "b", 0),
                          ("dilation_w_factor", "i", 1), ("dilation_h_factor", "i", 1)],
    "MAX_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                    ("filter_width", "i", 0), ("filter_height", "i", 0),
                    ("fused_activation_function", "b", 0)],
    "AVERAGE_POOL_2D": [("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
                        ("filter_width", "i", 0), ("filter_height", "i", 0),
                        ("fused_activation_function", "b", 0)],
    "ADD": [("fused_activation_function", "b", 0), ("pot_scale_int16", "?", 1)],
    "MUL": [("fused_activation_function", "b", 0)],
    "CONCATENATION": [("axis", "i", 0), ("fused_activation_function", "b", 0)],
    "RESHAPE": [("new_shape", "[i", None)],
    "RESIZE_BILINEAR": [("new_height", "i", 0), ("new_width", "i", 0), ("align_corners", "?", 0),
                        ("half_pixel_centers", "?", 0)],
    "RESIZE_NEAREST_NEIGHBOR": [("align_corners", "?", 0), ("half_pixel_centers", "?", 0)],
    "FULLY_CONNECTED": [("fused_activation_function", "b", 0), ("weights_format", "b", 0),
                        ("keep_num_dims", "?", 0), ("asymmetric_quantize_inputs", "?", 0)],
    "SOFTMAX": [("beta", "f", 0.0)],
    "PAD": [], "PADV2": [], "DEQUANTIZE": [], "TRANSPOSE": [], "LOGISTIC": [], "RELU": [],
}
_ENUM_FIELDS = {"padding": PADDING, "fused_activation_function": ACTIVATION}


class _Table:
    """A FlatBuffer table at ``pos`` in ``buf``."""

    __slots__ = ("buf", "pos", "vt", "vt_len")

    def __init__(self, buf: memoryview, pos: int):
        self.buf = buf
        self.pos = pos
        self.vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, self.vt)[0]

    def _off(self, field_id: int) -> int:
        o = 4 + 2 * field_id
        if o >= self.vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self.vt + o)[0]

    def has(self, field_id: int) -> bool:
        return self._off(field_id) != 0

    def scalar(self, field_id: int, fmt: str, default=0):
        o = self._off(field_id)
        return default if not o else struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0]

    def _indirect(self, field_id: int) -> int | None:
        o = self._off(field_id)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, field_id: int) -> "_Table | None":
        p = self._indirect(field_id)
        return None if p is None else _Table(self.buf, p)

    def string(self, field_id: int) -> str | None:
        p = self._indirect(field_id)
        if p is None:
            return None
        n = struct.unpack_from("<I", self.buf, p)[0]
        return bytes(self.buf[p + 4:p + 4 + n]).decode("utf-8", "replace")

    def vector(self, field_id: int, fmt: str) -> np.ndarray | None:
        """A vector of scalars (fmt: numpy dtype string, little endian)."""
        p = self._indirect(field_id)
        if p is None:
            return None
        n = struct.unpack_from("<I", self.buf, p)[0]
        return np.frombuffer(self.buf, dtype=np.dtype(fmt).newbyteorder("<"), count=n, offset=p + 4)

    def tables(self, field_id: int) -> list["_Table"]:
        p = self._indirect(field_id)
        if p is None:
            return []
        n = struct.unpack_from("<I", self.buf, p)[0]
        out = []
        for i in range(n):
            q = p + 4 + 4 * i
            out.append(_Table(self.buf, q + struct.unpack_from("<I", self.buf, q)[0]))
        return out


@dataclass
class Quantization:
    scale: np.ndarray | None
    zero_point: np.ndarray | None
    quantized_dimension: int
    min: np.ndarray | None = None
    max: np.ndarray | None = None


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str  # TensorType name
    buffer: int
    data: np.ndarray | None  # the constant's data (shaped, typed), None for activations
    quantization: Quantization | None
    is_variable: bool = False
    shape_signature: tuple | None = None


@dataclass
class Operator:
    index: int
    opcode: str
    version: int
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)
    options_type: int = 0
    custom_code: str | None = None


@dataclass
class Model:
    version: int
    description: str | None
    tensors: list
    operators: list
    inputs: list
    outputs: list
    subgraph_name: str | None
    metadata: dict
    n_subgraphs: int

    def tensor(self, name_or_index) -> Tensor:
        if isinstance(name_or_index, int):
            return self.tensors[name_or_index]
        for t in self.tensors:
            if t.name == name_or_index:
                return t
        raise KeyError(name_or_index)

    def const(self, index: int) -> np.ndarray:
        """A constant input as float32, through a DEQUANTIZE op (fp16 / int8 weights) when there is one."""
        t = self.tensors[index]
        if t.data is not None:
            return _dequantize(t)
        producer = self.producer(index)
        if producer is not None and producer.opcode == "DEQUANTIZE":
            return _dequantize(self.tensors[producer.inputs[0]])
        raise ValueError(f"tensor {index} ({t.name}) is not a constant")

    def const_int(self, index: int) -> np.ndarray:
        t = self.tensors[index]
        if t.data is None:
            raise ValueError(f"tensor {index} ({t.name}) is not a constant")
        return np.asarray(t.data, np.int64)

    def producer(self, index: int) -> Operator | None:
        for op in self.operators:
            if index in op.outputs:
                return op
        return None

    def summary(self) -> str:
        lines = []
        for op in self.operators:
            ins = ", ".join(f"{self.tensors[i].name}{list(self.tensors[i].shape)}" if i >= 0 else "-"
                            for i in op.inputs)
            outs = ", ".join(f"{self.tensors[i].name}{list(self.tensors[i].shape)}" for i in op.outputs)
            opts = " ".join(f"{k}={v}" for k, v in op.options.items())
            lines.append(f"{op.index:3d} {op.opcode:<18} {opts}\n      in: {ins}\n      out: {outs}")
        return "\n".join(lines)


def _dequantize(t: Tensor) -> np.ndarray:
    d = t.data
    if d.dtype in (np.float32, np.float16, np.float64):
        return d.astype(np.float32)
    q = t.quantization
    if q is None or q.scale is None:
        return d.astype(np.float32)
    scale, zp = q.scale.astype(np.float32), (q.zero_point if q.zero_point is not None else np.zeros(1, np.int64))
    if len(scale) > 1:
        bshape = [1] * d.ndim
        bshape[q.quantized_dimension] = -1
        scale, zp = scale.reshape(bshape), zp.reshape(bshape)
    return ((d.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)


def _read_options(op_name: str, t: _Table | None) -> dict:
    spec = _OPTION_FIELDS.get(op_name)
    if t is None or spec is None:
        return {}
    out = {}
    for fid, (name, fmt, default) in enumerate(spec):
        if fmt == "[i":
            v = t.vector(fid, "i4")
            out[name] = None if v is None else [int(x) for x in v]
            continue
        v = t.scalar(fid, fmt, default)
        if name in _ENUM_FIELDS:
            v = _ENUM_FIELDS[name].get(v, v)
        elif fmt == "?":
            v = bool(v)
        out[name] = v
    return out


def read_tflite(path_or_bytes) -> Model:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    buf = memoryview(data)
    ident = bytes(buf[4:8])
    if ident != b"TFL3":
        raise ValueError(f"not a TFLite model (file identifier {ident!r}, expected b'TFL3')")
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])

    version = root.scalar(0, "I")
    codes = []
    for c in root.tables(1):
        dep = c.scalar(0, "b", 0)
        ext = c.scalar(3, "i", 0)
        code = max(dep, ext)  # schema: builtin_code is authoritative when deprecated == 127 (placeholder)
        codes.append((BUILTIN_OPS.get(code, f"BUILTIN_{code}"), c.scalar(2, "i", 1), c.string(1)))

    buffers = []
    for b in root.tables(4):
        if b.scalar(1, "Q", 0) > 1:
            off, size = b.scalar(1, "Q"), b.scalar(2, "Q")
            buffers.append(np.frombuffer(buf, np.uint8, count=size, offset=off))
        else:
            v = b.vector(0, "u1")
            buffers.append(np.zeros(0, np.uint8) if v is None else v)

    metadata = {}
    for m in root.tables(6):
        metadata[m.string(0)] = bytes(buffers[m.scalar(1, "I")])

    subgraphs = root.tables(2)
    if not subgraphs:
        raise ValueError("model has no subgraph")
    sg = subgraphs[0]

    tensors = []
    for i, t in enumerate(sg.tables(0)):
        shape = tuple(int(x) for x in (t.vector(0, "i4") if t.has(0) else []))
        type_id = t.scalar(1, "b", 0)
        type_name, np_type = TENSOR_TYPES.get(type_id, (f"TYPE_{type_id}", None))
        bidx = t.scalar(2, "I", 0)
        raw = buffers[bidx] if bidx < len(buffers) else None
        arr = None
        if raw is not None and len(raw) and np_type is not None:
            arr = np.frombuffer(raw.tobytes(), dtype=np.dtype(np_type).newbyteorder("<")).reshape(shape)
        q = t.table(4)
        quant = None
        if q is not None and (q.has(2) or q.has(0)):
            quant = Quantization(scale=q.vector(2, "f4"), zero_point=q.vector(3, "i8"),
                                 quantized_dimension=q.scalar(6, "i", 0),
                                 min=q.vector(0, "f4"), max=q.vector(1, "f4"))
        sig = t.vector(7, "i4")
        tensors.append(Tensor(index=i, name=t.string(3) or f"t{i}", shape=shape, dtype=type_name, buffer=bidx,
                              data=arr, quantization=quant, is_variable=bool(t.scalar(5, "B", 0)),
                              shape_signature=None if sig is None else tuple(int(x) for x in sig)))

    operators = []
    for i, o in enumerate(sg.tables(3)):
        name, ver, custom = codes[o.scalar(0, "I", 0)]
        inputs = [int(x) for x in (o.vector(1, "i4") if o.has(1) else [])]
        outputs = [int(x) for x in (o.vector(2, "i4") if o.has(2) else [])]
        operators.append(Operator(index=i, opcode=name, version=ver, inputs=inputs, outputs=outputs,
                                  options=_read_options(name, o.table(4)), options_type=o.scalar(3, "B", 0),
                                  custom_code=custom))

    return Model(version=version, description=root.string(3), tensors=tensors, operators=operators,
                 inputs=[int(x) for x in sg.vector(1, "i4")], outputs=[int(x) for x in sg.vector(2, "i4")],
                 subgraph_name=sg.string(4), metadata=metadata, n_subgraphs=len(subgraphs))



# ----------------------------------------------------------------------------------------
# Lowering: the TFLite graph (NHWC, fp16 weights behind DEQUANTIZE ops) to a short list of
# NCHW float32 steps that the torch and ONNX builders both consume.
# ----------------------------------------------------------------------------------------


def _same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding along one axis: (before, after); the odd pixel goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass
class Step:
    kind: str  # conv | relu | add | maxpool | pad | resize | flatten_nhwc
    out: str
    inputs: list
    attrs: dict = field(default_factory=dict)


_NHWC_TO_NCHW = (0, 3, 1, 2)


def lower_to_nchw(model: Model) -> tuple[list[Step], str, dict]:
    """The model as NCHW steps: (steps, input name, {output name: tensor shape (N, anchors, C)}).

    Supported (all this BlazeFace model uses): CONV_2D, DEPTHWISE_CONV_2D (multiplier 1), RELU,
    ADD, MAX_POOL_2D, PAD (constant 0), RESIZE_BILINEAR (align_corners or half_pixel_centers
    noted), RESHAPE to (1, -1, C) of an NHWC map, DEQUANTIZE of constants (folded into the
    weights: fp16 -> fp32 is exact). Anything else raises NotImplementedError.
    """
    T = model.tensors
    name = {i: T[i].name for i in range(len(T))}
    steps: list[Step] = []
    act_step = {"NONE": None, "RELU": "relu"}

    def activation(op, out_name, act):
        if act not in act_step:
            raise NotImplementedError(f"op {op.index}: fused activation {act}")
        if act_step[act]:
            steps.append(Step("relu", out_name, [out_name + "/pre_act"]))
            return out_name + "/pre_act"
        return out_name

    for op in model.operators:
        o = op.options
        if op.opcode == "DEQUANTIZE":
            if T[op.inputs[0]].data is None:
                raise NotImplementedError(f"op {op.index}: DEQUANTIZE of an activation")
            continue
        x = name[op.inputs[0]]
        out = name[op.outputs[0]]
        if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            w = model.const(op.inputs[1])  # CONV: [O, kh, kw, I]; DEPTHWISE: [1, kh, kw, C*m]
            b = model.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
            _, h, wd, c = T[op.inputs[0]].shape
            if op.opcode == "CONV_2D":
                wt, groups = w.transpose(0, 3, 1, 2), 1
            else:
                if o["depth_multiplier"] not in (0, 1) and w.shape[3] != c:
                    raise NotImplementedError(f"op {op.index}: depth multiplier {o['depth_multiplier']}")
                wt, groups = w.transpose(3, 0, 1, 2), c  # [C, 1, kh, kw]
            kh, kw = wt.shape[2:]
            sh, sw = o["stride_h"], o["stride_w"]
            dh, dw = o["dilation_h_factor"], o["dilation_w_factor"]
            if o["padding"] == "SAME":
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh, dh), _same_pads(wd, kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            target = activation(op, out, o["fused_activation_function"])
            steps.insert(len(steps) - (target != out), Step(
                "conv", target, [x], dict(weight=np.ascontiguousarray(wt, np.float32),
                                          bias=None if b is None else b.astype(np.float32),
                                          stride=(sh, sw), dilation=(dh, dw), pads=(pt, pl, pb, pr),
                                          groups=groups)))
        elif op.opcode == "RELU":
            steps.append(Step("relu", out, [x]))
        elif op.opcode == "ADD":
            if T[op.inputs[0]].shape != T[op.inputs[1]].shape:
                raise NotImplementedError(f"op {op.index}: broadcasting ADD")
            target = activation(op, out, o["fused_activation_function"])
            steps.insert(len(steps) - (target != out), Step("add", target, [x, name[op.inputs[1]]]))
        elif op.opcode == "MAX_POOL_2D":
            _, h, wd, c = T[op.inputs[0]].shape
            kh, kw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
            if o["padding"] == "SAME":
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh), _same_pads(wd, kw, sw)
            else:
                pt = pb = pl = pr = 0
            if pt or pb or pl or pr:
                # TFLite ignores padded cells in a max pool (-inf padding): not needed for this model.
                raise NotImplementedError(f"op {op.index}: padded max pool")
            target = activation(op, out, o["fused_activation_function"])
            steps.insert(len(steps) - (target != out), Step(
                "maxpool", target, [x], dict(kernel=(kh, kw), stride=(sh, sw))))
        elif op.opcode == "PAD":
            p = model.const_int(op.inputs[1])  # [[before, after]] per NHWC axis
            if p[0].any():
                raise NotImplementedError(f"op {op.index}: padding the batch axis")
            p = p[list(_NHWC_TO_NCHW)]
            steps.append(Step("pad", out, [x], dict(before=tuple(int(v) for v in p[:, 0]),
                                                    after=tuple(int(v) for v in p[:, 1]))))
        elif op.opcode == "RESIZE_BILINEAR":
            size = tuple(int(v) for v in model.const_int(op.inputs[1]))
            steps.append(Step("resize", out, [x], dict(size=size, align_corners=o["align_corners"],
                                                       half_pixel_centers=o["half_pixel_centers"])))
        elif op.opcode == "RESHAPE":
            shp = T[op.outputs[0]].shape
            src = T[op.inputs[0]].shape
            if len(src) != 4 or len(shp) != 3 or shp[2] != src[3]:
                raise NotImplementedError(f"op {op.index}: RESHAPE {src} -> {shp}")
            steps.append(Step("flatten_nhwc", out, [x], dict(channels=shp[2])))
        else:
            raise NotImplementedError(f"op {op.index}: {op.opcode}")

    if len(model.inputs) != 1:
        raise NotImplementedError("models with several inputs")
    outputs = {name[i]: T[i].shape for i in model.outputs}
    return steps, name[model.inputs[0]], outputs
