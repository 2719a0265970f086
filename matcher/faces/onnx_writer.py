"""A minimal ONNX writer: the dlib face ResNet as an ONNX model, so OpenCV's DNN module can run it.

Only the few protobuf messages needed (ModelProto, GraphProto, NodeProto,
AttributeProto, TensorProto, ValueInfoProto; field numbers from onnx.proto),
encoded in protobuf's wire format by hand: no onnx or protobuf package at run time.
"""

from __future__ import annotations

import struct

import numpy as np

from matcher.faces.resnet_weights import CHIP_SIZE, folded


def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64  # int64 negatives: 10-byte two's complement
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field, wire):
    return _varint((field << 3) | wire)


def _f_int(field, v):
    return _key(field, 0) + _varint(int(v))


def _f_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return _key(field, 2) + _varint(len(data)) + data


def _f_float(field, v):
    return _key(field, 5) + struct.pack("<f", v)


_ONNX_FLOAT, _ONNX_INT64 = 1, 7


def _tensor_proto(name, arr):
    arr = np.asarray(arr)
    dt = {np.dtype(np.float32): _ONNX_FLOAT, np.dtype(np.int64): _ONNX_INT64}[arr.dtype]
    body = b"".join(_f_int(1, d) for d in arr.shape)  # dims
    body += _f_int(2, dt)  # data_type
    body += _f_bytes(8, name)  # name
    body += _f_bytes(9, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())  # raw_data
    return body


def _attr(name, value):
    body = _f_bytes(1, name)
    if isinstance(value, float):
        body += _f_float(2, value) + _f_int(20, 1)  # f, type=FLOAT
    elif isinstance(value, int):
        body += _f_int(3, value) + _f_int(20, 2)  # i, type=INT
    elif isinstance(value, str):
        body += _f_bytes(4, value) + _f_int(20, 3)  # s, type=STRING
    else:  # list of ints
        body += b"".join(_f_int(8, v) for v in value) + _f_int(20, 7)  # ints, type=INTS
    return body


def _node(op, inputs, outputs, name, **attrs):
    body = b"".join(_f_bytes(1, i) for i in inputs)
    body += b"".join(_f_bytes(2, o) for o in outputs)
    body += _f_bytes(3, name) + _f_bytes(4, op)
    body += b"".join(_f_bytes(5, _attr(k, v)) for k, v in attrs.items())
    return body


def _value_info(name, dims):
    dim_msgs = b"".join(_f_bytes(1, _f_bytes(2, d) if isinstance(d, str) else _f_int(1, d)) for d in dims)
    tensor_type = _f_int(1, _ONNX_FLOAT) + _f_bytes(2, dim_msgs)
    return _f_bytes(1, name) + _f_bytes(2, _f_bytes(1, tensor_type))


def _down_shapes(h: int) -> tuple[int, int]:
    """(block output size, shortcut size) of an ares_down on an h x h input."""
    return (h - 3) // 2 + 1, (h - 2) // 2 + 1


def build_onnx_model(weights, batch=None, opset=13) -> bytes:
    """Serialize the network (affine folded into the convs) as ONNX bytes.

    Input "input": float32 (N,3,150,150), already preprocessed (preprocess_chips).
    Output "embedding": float32 (N,128).  batch=None gives a symbolic batch dim.
    """
    stem, blocks = folded(weights)
    nodes, inits = [], []
    counter = [0]

    def uid(p):
        counter[0] += 1
        return f"{p}{counter[0]}"

    def const(name, arr):
        inits.append(_tensor_proto(name, arr))
        return name

    def conv(x, wb, stride, pad):
        w, b = wb
        n = uid("conv")
        out = n + "_out"
        nodes.append(_node("Conv", [x, const(n + "_w", w), const(n + "_b", b)], [out], n,
                           kernel_shape=list(w.shape[2:]), strides=[stride, stride],
                           pads=[pad, pad, pad, pad], dilations=[1, 1], group=1))
        return out

    def simple(op, inputs, **attrs):
        n = uid(op.lower())
        nodes.append(_node(op, inputs, [n + "_out"], n, **attrs))
        return n + "_out"

    def pad_end(x, dc, dh, dw):
        # ONNX Pad pads = [x1_begin.., x1_end..]; dlib zero-extends at the end only.
        if not (dc or dh or dw):
            return x
        p = const(uid("pads"), np.array([0, 0, 0, 0, 0, dc, dh, dw], np.int64))
        return simple("Pad", [x, p], mode="constant")

    x = conv("input", stem, 2, 0)
    x = simple("Relu", [x])
    x = simple("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 0, 0])
    h, c = 35, stem[0].shape[0]
    for down, c1, c2 in blocks:
        cout = c1[0].shape[0]
        if down:
            y = simple("Relu", [conv(x, c1, 2, 0)])
            y = conv(y, c2, 1, 1)
            hy, hs = _down_shapes(h)
            sc = simple("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 0])
            hout = max(hy, hs)
            y = pad_end(y, 0, hout - hy, hout - hy)
            sc = pad_end(sc, cout - c, hout - hs, hout - hs)
            x = simple("Relu", [simple("Add", [y, sc])])
            h = hout
        else:
            y = simple("Relu", [conv(x, c1, 1, 1)])
            x = simple("Relu", [simple("Add", [conv(y, c2, 1, 1), x])])
        c = cout
    x = simple("GlobalAveragePool", [x])
    x = simple("Flatten", [x], axis=1)
    fc = const("fc_w", weights["fc_w"])  # (128, 256); Gemm with transB=1
    nodes.append(_node("Gemm", [x, fc], ["embedding"], "fc", transB=1))

    graph = b"".join(_f_bytes(1, n) for n in nodes)
    graph += _f_bytes(2, "dlib_face_recognition_resnet_model_v1")
    graph += b"".join(_f_bytes(5, t) for t in inits)
    graph += _f_bytes(11, _value_info("input", ["N" if batch is None else batch, 3, CHIP_SIZE, CHIP_SIZE]))
    graph += _f_bytes(12, _value_info("embedding", ["N" if batch is None else batch, 128]))
    model = _f_int(1, 7)  # ir_version
    model += _f_bytes(2, "consent-matcher")  # producer_name
    model += _f_bytes(7, graph)
    model += _f_bytes(8, _f_bytes(1, "") + _f_int(2, opset))  # opset_import
    return model
