"""dlib's face ResNet as an ONNX model (folded affine layers), so onnxruntime or OpenCV can run it."""

from __future__ import annotations

import numpy as np

from matcher.faces.onnx_proto import Graph, model_bytes, node, value_info
from matcher.faces.resnet_weights import CHIP_SIZE, folded


def _down_shapes(h: int) -> tuple[int, int]:
    """(block output size, shortcut size) of an ares_down on an h x h input."""
    return (h - 3) // 2 + 1, (h - 2) // 2 + 1


def build_onnx_model(weights, batch=None, opset=13) -> bytes:
    """Serialize the network (affine folded into the convs) as ONNX bytes.

    Input "input": float32 (N,3,150,150), already preprocessed (preprocess_chips).
    Output "embedding": float32 (N,128).  batch=None gives a symbolic batch dim.
    """
    stem, blocks = folded(weights)
    graph = Graph()
    nodes, inits, uid, const = graph.nodes, graph.initializers, graph.unique, graph.const

    def conv(x, wb, stride, pad):
        w, b = wb
        n = uid("conv")
        out = n + "_out"
        nodes.append(node("Conv", [x, const(n + "_w", w), const(n + "_b", b)], [out], n,
                           kernel_shape=list(w.shape[2:]), strides=[stride, stride],
                           pads=[pad, pad, pad, pad], dilations=[1, 1], group=1))
        return out

    def simple(op, inputs, **attrs):
        n = uid(op.lower())
        nodes.append(node(op, inputs, [n + "_out"], n, **attrs))
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
    nodes.append(node("Gemm", [x, fc], ["embedding"], "fc", transB=1))

    n = "N" if batch is None else batch
    return model_bytes("dlib_face_recognition_resnet_model_v1", nodes, inits,
                       [value_info("input", [n, 3, CHIP_SIZE, CHIP_SIZE])], [value_info("embedding", [n, 128])], opset)
