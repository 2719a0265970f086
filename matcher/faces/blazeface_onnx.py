"""MediaPipe's BlazeFace (full range) written out as an ONNX model from the .tflite file's own weights.

The TFLite graph (:mod:`.tflite`) is lowered to NCHW steps (weights stored as
float16 in the file are widened exactly) and written as ONNX (opset 13): 89
convolutions (TF SAME padding as explicit, possibly asymmetric, pads: stride-2
convolutions pad 0 before and 1 after), Relu, Add, MaxPool, Pad, Resize (linear,
half-pixel centres), Transpose and Reshape. Input "input" (N, 3, 192, 192) RGB in
[-1, 1]; outputs the classifier's logits (N, 2304, 1) and the regressor's boxes
and keypoints (N, 2304, 16): the same as the .tflite file's, to 4e-5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from matcher.faces.onnx_proto import Graph, model_bytes, node, value_info
from matcher.faces.tflite import lower_to_nchw, read_tflite

OUTPUTS = ("reshaped_classifier_face_4", "reshaped_regressor_face_4")
TILE = 192


def build_onnx_model(path: Path, batch=None, opset=13) -> bytes:
    """The BlazeFace graph as ONNX bytes. batch=None: symbolic batch dimension "N"."""
    steps, input_name, outputs = lower_to_nchw(read_tflite(path))
    graph = Graph()
    nodes, inits, uid, const = graph.nodes, graph.initializers, graph.unique, graph.const
    names = {input_name: "input"}  # tflite tensor names contain '/', fine in ONNX, but keep them tidy

    for s in steps:
        x = names[s.inputs[0]]
        out = s.out if s.out in OUTPUTS else uid(s.kind)
        a = s.attrs
        if s.kind == "conv":
            w = a["weight"]
            ins = [x, const(out + "_w", w)]
            if a["bias"] is not None:
                ins.append(const(out + "_b", a["bias"]))
            pt, pl, pb, pr = a["pads"]
            nodes.append(node("Conv", ins, [out], out, kernel_shape=list(w.shape[2:]), strides=list(a["stride"]),
                               pads=[pt, pl, pb, pr], dilations=list(a["dilation"]), group=a["groups"]))
        elif s.kind == "relu":
            nodes.append(node("Relu", [x], [out], out))
        elif s.kind == "add":
            nodes.append(node("Add", [x, names[s.inputs[1]]], [out], out))
        elif s.kind == "maxpool":
            nodes.append(node("MaxPool", [x], [out], out, kernel_shape=list(a["kernel"]),
                               strides=list(a["stride"]), pads=[0, 0, 0, 0]))
        elif s.kind == "pad":
            p = const(out + "_pads", np.array(list(a["before"]) + list(a["after"]), np.int64))
            nodes.append(node("Pad", [x, p], [out], out, mode="constant"))
        elif s.kind == "resize":
            # scales (not sizes): the batch dimension stays symbolic. 2x here: (6->12, 12->24, 24->48).
            in_hw = _spatial_of(steps, s.inputs[0])
            sc = [float(o) / float(i) for o, i in zip(a["size"], in_hw)]
            scales = const(out + "_scales", np.array([1.0, 1.0] + sc, np.float32))
            roi = const(out + "_roi", np.zeros(0, np.float32))
            ctm = "half_pixel" if a["half_pixel_centers"] else ("align_corners" if a["align_corners"] else "asymmetric")
            nodes.append(node("Resize", [x, roi, scales], [out], out, mode="linear",
                               coordinate_transformation_mode=ctm))
        elif s.kind == "flatten_nhwc":
            t = uid("transpose")
            nodes.append(node("Transpose", [x], [t], t, perm=[0, 2, 3, 1]))
            shape = const(out + "_shape", np.array([0, -1, a["channels"]], np.int64))  # 0: keep N
            nodes.append(node("Reshape", [t, shape], [out], out))
        else:
            raise NotImplementedError(s.kind)
        names[s.out] = out

    n = "N" if batch is None else batch
    return model_bytes("blazeface_full_range", nodes, inits, [value_info("input", [n, 3, TILE, TILE])],
                       [value_info(OUTPUTS[0], [n, 2304, 1]), value_info(OUTPUTS[1], [n, 2304, 16])], opset)


def _spatial_of(steps, tensor_name, size=TILE):
    """(H, W) of an activation, by walking the steps from the input (all shapes are static here)."""
    hw = {}
    first = True
    for s in steps:
        if first:
            hw[s.inputs[0]] = (size, size)
            first = False
        h, w = hw[s.inputs[0]]
        a = s.attrs
        if s.kind == "conv":
            kh, kw = a["weight"].shape[2:]
            pt, pl, pb, pr = a["pads"]
            h = (h + pt + pb - (kh - 1) * a["dilation"][0] - 1) // a["stride"][0] + 1
            w = (w + pl + pr - (kw - 1) * a["dilation"][1] - 1) // a["stride"][1] + 1
        elif s.kind == "maxpool":
            h = (h - a["kernel"][0]) // a["stride"][0] + 1
            w = (w - a["kernel"][1]) // a["stride"][1] + 1
        elif s.kind == "resize":
            h, w = a["size"]
        hw[s.out] = (h, w)
        if s.out == tensor_name:
            break
    return hw[tensor_name]
