"""Tiny stand-ins for insightface's antelopev2 ONNX files, built with ``onnx.helper``.

They have the interfaces insightface's ``model_zoo`` routes on, so the real ``SCRFD``,
``ArcFaceONNX`` and ``Landmark`` classes run them over onnxruntime:

* detector (``scrfd_10g_bnkps.onnx``): input ``[1, 3, h, w]``, 9 outputs (scores ``[N, 1]``, box
  distances ``[N, 4]``, keypoint distances ``[N, 10]`` for strides 8/16/32, 2 anchors per cell).
  Face k of ``face_boxes`` (relative (x1, y1, x2, y2) of the detector canvas; for the letterboxed
  detector input that is relative to the image's longer side) is reported by anchor k % 2 of stride
  index k // 2 with score ``0.9 - 0.01 k`` - but only if the image has texture inside that box
  (max 8x8-cell pixel variance x ``texture_gain``, capped at 1, scales the score), so a blank image has no face.
* recognition (``glintr100.onnx``): ``[N, 3, 112, 112]`` -> 8x8 average pool -> flatten -> fixed
  random ``[588, 512]`` matrix (``recognition_matrix(seed)``). No Sub/Mul node names in the first nodes,
  so ArcFaceONNX uses mean = std = 127.5 like for glintr100.
* landmarks (``2d106det.onnx``): ``[1, 3, 192, 192]`` -> ``[1, 212]``, a constant 106-point face
  (``landmark_template()``, same layout as the 2d106 markup) placed relative to the face box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 8
STRIDES = (8, 16, 32)
DEFAULT_FACE_BOX = (0.3, 0.25, 0.7, 0.75)
# SCRFD keypoints inside the box (image-left eye, image-right eye, nose tip, mouth corners).
KEYPOINTS_IN_BOX = ((0.32, 0.40), (0.68, 0.40), (0.5, 0.62), (0.34, 0.78), (0.66, 0.78))
_DUMMY_BOX = (0.4, 0.4, 0.6, 0.6)


class _Graph:
    """Minimal node/initializer collector with names that never start with Sub/Mul."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def op(self, op_type: str, *inputs: str, **attrs) -> str:
        self.count += 1
        out = f"{self.prefix}{self.count}_{op_type.lower()}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{self.prefix}{self.count}", **attrs))
        return out

    def const(self, value, dtype=np.float32) -> str:
        self.count += 1
        name = f"{self.prefix}c{self.count}"
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name


def _model(graph: _Graph, name: str, inputs, outputs) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(graph.nodes, name, inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="singer-tests",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def _grid(g: _Graph, x: str, stride: int) -> tuple[str, str, str, str, str]:
    """ones [1,1,h,w], anchor x/y [1,1,h,w], canvas width [1,1,h,1] and height [1,1,1,w] in pixels."""
    pooled = g.op("AveragePool", x, kernel_shape=[stride, stride], strides=[stride, stride])
    ones = g.op("Add", g.op("Mul", g.op("ReduceMean", pooled, axes=[1], keepdims=1), g.const(0.0)), g.const(1.0))
    s = g.const(float(stride))
    col = g.op("Sub", g.op("CumSum", ones, g.const(3, np.int64)), g.const(1.0))
    row = g.op("Sub", g.op("CumSum", ones, g.const(2, np.int64)), g.const(1.0))
    canvas_w = g.op("Mul", g.op("ReduceSum", ones, g.const([3], np.int64), keepdims=1), s)
    canvas_h = g.op("Mul", g.op("ReduceSum", ones, g.const([2], np.int64), keepdims=1), s)
    return ones, g.op("Mul", col, s), g.op("Mul", row, s), canvas_w, canvas_h


def _box_edges(g: _Graph, box, canvas_w: str, canvas_h: str) -> list[str]:
    x1, y1, x2, y2 = box
    return [
        g.op("Mul", g.const(x1), canvas_w),
        g.op("Mul", g.const(y1), canvas_h),
        g.op("Mul", g.const(x2), canvas_w),
        g.op("Mul", g.const(y2), canvas_h),
    ]


def _texture_gate(g: _Graph, x: str, boxes, texture_gain: float) -> list[str]:
    """Per box: min(1, gain * max 8x8-cell variance inside the box), a scalar."""
    mean = g.op("AveragePool", x, kernel_shape=[8, 8], strides=[8, 8])
    mean_sq = g.op("AveragePool", g.op("Mul", x, x), kernel_shape=[8, 8], strides=[8, 8])
    variance = g.op("ReduceMean", g.op("Sub", mean_sq, g.op("Mul", mean, mean)), axes=[1], keepdims=1)
    _, ax, ay, canvas_w, canvas_h = _grid(g, x, 8)
    gates = []
    for box in boxes:
        x1, y1, x2, y2 = _box_edges(g, box, canvas_w, canvas_h)
        inside = [g.op("Cast", g.op(op, a, b), to=TensorProto.FLOAT) for op, a, b in
                  (("Greater", ax, x1), ("Less", ax, x2), ("Greater", ay, y1), ("Less", ay, y2))]
        mask = g.op("Mul", g.op("Mul", inside[0], inside[1]), g.op("Mul", inside[2], inside[3]))
        peak = g.op("ReduceMax", g.op("Mul", mask, variance), keepdims=0)
        gates.append(g.op("Min", g.op("Mul", peak, g.const(texture_gain)), g.const(1.0)))
    return gates


def _anchor_maps(g: _Graph, stride: int, box, grid) -> tuple[str, str]:
    """Box distances [1,4,h,w] and keypoint distances [1,10,h,w] that decode to ``box`` at every anchor."""
    _, ax, ay, canvas_w, canvas_h = grid
    x1, y1, x2, y2 = _box_edges(g, box, canvas_w, canvas_h)
    s = g.const(float(stride))
    dist = [g.op("Div", g.op("Sub", a, b), s) for a, b in ((ax, x1), (ay, y1), (x2, ax), (y2, ay))]
    box_w, box_h = g.op("Sub", x2, x1), g.op("Sub", y2, y1)
    kps = []
    for fx, fy in KEYPOINTS_IN_BOX:
        px = g.op("Add", x1, g.op("Mul", g.const(fx), box_w))
        py = g.op("Add", y1, g.op("Mul", g.const(fy), box_h))
        kps += [g.op("Div", g.op("Sub", px, ax), s), g.op("Div", g.op("Sub", py, ay), s)]
    return g.op("Concat", *dist, axis=1), g.op("Concat", *kps, axis=1)


def _anchor_rows(g: _Graph, maps: list[str], channels: int) -> str:
    """Two [1,c,h,w] anchor maps -> [h*w*2, c] rows in SCRFD's (cell, anchor) order."""
    stacked = g.op("Concat", *[g.op("Unsqueeze", m, g.const([4], np.int64)) for m in maps], axis=4)
    cells = g.op("Transpose", stacked, perm=[0, 2, 3, 4, 1])
    return g.op("Reshape", cells, g.const([-1, channels], np.int64))


def detector_model(
    face_boxes=(DEFAULT_FACE_BOX,), texture_gain: float = 100.0, with_keypoints: bool = True
) -> onnx.ModelProto:
    """SCRFD-layout detector (9 outputs; 6 without the keypoint head)."""
    boxes = [tuple(float(v) for v in box) for box in face_boxes]
    if not 0 <= len(boxes) <= 2 * len(STRIDES):
        raise ValueError("the tiny detector reports at most 6 faces")
    g = _Graph("det")
    x = "input.1"
    gates = _texture_gate(g, x, boxes, texture_gain)
    scores, bboxes, kpss = [], [], []
    for index, stride in enumerate(STRIDES):
        grid = _grid(g, x, stride)
        score_maps, box_maps, kps_maps = [], [], []
        for anchor in range(2):
            slot = 2 * index + anchor
            box = boxes[slot] if slot < len(boxes) else _DUMMY_BOX
            score = g.op("Mul", gates[slot], g.const(0.9 - 0.01 * slot)) if slot < len(boxes) else g.const(0.0)
            score_maps.append(g.op("Mul", grid[0], score))
            box_map, kps_map = _anchor_maps(g, stride, box, grid)
            box_maps.append(box_map)
            kps_maps.append(kps_map)
        scores.append(_anchor_rows(g, score_maps, 1))
        bboxes.append(_anchor_rows(g, box_maps, 4))
        kpss.append(_anchor_rows(g, kps_maps, 10))
    outputs = []
    groups = [("score", 1, scores), ("bbox", 4, bboxes)] + ([("kps", 10, kpss)] if with_keypoints else [])
    for group, channels, tensors in groups:
        for stride, tensor in zip(STRIDES, tensors, strict=True):
            name = f"{group}_{stride}"
            g.nodes.append(helper.make_node("Identity", [tensor], [name], name=f"out_{name}"))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{stride}", channels]))
    inputs = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "height", "width"])]
    return _model(g, "tiny_scrfd", inputs, outputs)


def recognition_matrix(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((3 * 14 * 14, 512)) * 0.05).astype(np.float32)


def recognition_model(seed: int = 0) -> onnx.ModelProto:
    g = _Graph("rec")
    pooled = g.op("AveragePool", "input.1", kernel_shape=[8, 8], strides=[8, 8])
    flat = g.op("Flatten", pooled, axis=1)
    g.nodes.append(helper.make_node("MatMul", [flat, g.const(recognition_matrix(seed))], ["embedding"], name="fc"))
    inputs = [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["batch", 3, 112, 112])]
    outputs = [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 512])]
    return _model(g, "tiny_arcface", inputs, outputs)


def _arc(center, radius, start, stop, count):
    angles = np.linspace(start, stop, count)
    return np.stack([center[0] + radius[0] * np.cos(angles), center[1] + radius[1] * np.sin(angles)], axis=1)


def landmark_template() -> np.ndarray:
    """[106, 2] points relative to the face box (0..1), in the 2d106 index layout."""
    points = np.zeros((106, 2))
    left = _arc((0.5, 0.38), (0.48, 0.60), np.pi, np.pi / 2, 17)  # image-left ear -> chin
    right = _arc((0.5, 0.38), (0.48, 0.60), 0.0, np.pi / 2, 17)  # image-right ear -> chin
    points[[1, 9, 10, 11, 12, 13, 14, 15, 16, 2, 3, 4, 5, 6, 7, 8, 0]] = left
    points[[17, 25, 26, 27, 28, 29, 30, 31, 32, 18, 19, 20, 21, 22, 23, 24]] = right[:16]
    points[33:43] = _arc((0.32, 0.40), (0.08, 0.03), 0, 2 * np.pi, 11)[:10]
    points[87:97] = _arc((0.68, 0.40), (0.08, 0.03), 0, 2 * np.pi, 11)[:10]
    points[43:52] = _arc((0.31, 0.33), (0.13, 0.04), np.pi, 2 * np.pi, 9)
    points[97:106] = _arc((0.69, 0.33), (0.13, 0.04), np.pi, 2 * np.pi, 9)
    mouth_angles = np.r_[np.pi, np.pi + np.arange(1, 6) * np.pi / 6, np.arange(1, 6) * np.pi / 6, 0.0]
    outer = np.stack([0.5 + 0.16 * np.cos(mouth_angles), 0.78 + 0.06 * np.sin(mouth_angles)], axis=1)
    points[[52, 53, 54, 55, 56, 57, 58, 59, 60, 62, 63, 61]] = outer  # corners: 52 left, 61 right
    points[64:72] = _arc((0.5, 0.78), (0.10, 0.03), 0, 2 * np.pi, 9)[:8]
    points[72:86] = np.stack([np.linspace(0.46, 0.54, 14), np.linspace(0.42, 0.60, 14)], axis=1)
    points[86] = (0.5, 0.62)
    return points


def landmark_model(face_template: np.ndarray | None = None) -> onnx.ModelProto:
    """The template in the Landmark class's output convention: (p - centre) / (0.75 max(w, h)) for a square box."""
    template = landmark_template() if face_template is None else face_template
    normalized = ((template - 0.5) / 0.75).astype(np.float32).reshape(1, 212)
    g = _Graph("lmk")
    zero = g.op("Mul", g.op("ReduceMean", "data", keepdims=0), g.const(0.0))
    g.nodes.append(helper.make_node("Add", [g.const(normalized), zero], ["fc1"], name="lmk_out"))
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])]
    outputs = [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 212])]
    return _model(g, "tiny_2d106", inputs, outputs)


def write_antelopev2(
    directory: str | Path, face_boxes=(DEFAULT_FACE_BOX,), seed: int = 0, detector_keypoints: bool = True
) -> Path:
    """Write the three tiny models under the antelopev2 file names into ``directory``; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(detector_model(face_boxes, with_keypoints=detector_keypoints), str(directory / "scrfd_10g_bnkps.onnx"))
    onnx.save(recognition_model(seed), str(directory / "glintr100.onnx"))
    onnx.save(landmark_model(), str(directory / "2d106det.onnx"))
    return directory
