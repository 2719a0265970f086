"""A minimal ONNX writer: the few protobuf messages a model needs, in protobuf's wire format, by hand.

ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto and
ValueInfoProto (field numbers from onnx.proto): enough for our own networks
(:mod:`.resnet_onnx`, :mod:`.blazeface_onnx`) to run in onnxruntime or
OpenCV's DNN module, with no onnx or protobuf package.
"""

from __future__ import annotations

import struct

import numpy as np


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


def tensor_proto(name, arr):
    arr = np.asarray(arr)
    dt = {np.dtype(np.float32): _ONNX_FLOAT, np.dtype(np.int64): _ONNX_INT64}[arr.dtype]
    body = b"".join(_f_int(1, d) for d in arr.shape)  # dims
    body += _f_int(2, dt)  # data_type
    body += _f_bytes(8, name)  # name
    body += _f_bytes(9, np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())  # raw_data
    return body


def attr(name, value):
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


def node(op, inputs, outputs, name, **attrs):
    body = b"".join(_f_bytes(1, i) for i in inputs)
    body += b"".join(_f_bytes(2, o) for o in outputs)
    body += _f_bytes(3, name) + _f_bytes(4, op)
    body += b"".join(_f_bytes(5, attr(k, v)) for k, v in attrs.items())
    return body


class Graph:
    """The nodes and initializers of a graph being built, and unique names for them."""

    def __init__(self):
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self._named = 0

    def unique(self, prefix: str) -> str:
        self._named += 1
        return f"{prefix}_{self._named}"

    def const(self, name: str, arr) -> str:
        """An initializer (a constant tensor); its name, to use as a node's input."""
        self.initializers.append(tensor_proto(name, arr))
        return name


def value_info(name, dims):
    dim_msgs = b"".join(_f_bytes(1, _f_bytes(2, d) if isinstance(d, str) else _f_int(1, d)) for d in dims)
    tensor_type = _f_int(1, _ONNX_FLOAT) + _f_bytes(2, dim_msgs)
    return _f_bytes(1, name) + _f_bytes(2, _f_bytes(1, tensor_type))


def model_bytes(name: str, nodes: list[bytes], initializers: list[bytes], inputs: list[bytes], outputs: list[bytes],
                opset: int = 13) -> bytes:
    """A ModelProto of one graph (ir_version 7)."""
    graph = b"".join(_f_bytes(1, n) for n in nodes)
    graph += _f_bytes(2, name)
    graph += b"".join(_f_bytes(5, t) for t in initializers)
    graph += b"".join(_f_bytes(11, v) for v in inputs)
    graph += b"".join(_f_bytes(12, v) for v in outputs)
    model = _f_int(1, 7)  # ir_version
    model += _f_bytes(2, "consent-matcher")  # producer_name
    model += _f_bytes(7, graph)
    model += _f_bytes(8, _f_bytes(1, "") + _f_int(2, opset))  # opset_import
    return model
