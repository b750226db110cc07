"""ONNX Runtime on the CPU execution provider: the CPU path where OpenVINO is not installed (an ARM
board, a Python without OpenVINO wheels) and the node's fallback after backend failures."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fcn_perception.inference.base import Backend, Inference
from fcn_perception.inference.stencil_head import StencilHead, head_for
from fcn_perception.model.config import CONFIDENCE_NAME, LOGITS_NAME, MASK_NAME, onnx_constants, proto_config


def _crops_height_or_width(node, constant) -> bool:
    """A Slice (opset 10 on) that keeps rows or columns from 0, one by one, and nothing else.
    ``constant(name)``: a tensor's value where the graph holds it, else None."""
    if len(node.input) < 4:  # before opset 10 the crop was attributes; without axes it may cut the classes
        return False
    starts, axes = constant(node.input[1]), constant(node.input[3])
    steps = constant(node.input[4]) if len(node.input) > 4 and node.input[4] else np.ones(1)
    if starts is None or axes is None or steps is None:
        return False
    return not np.any(starts != 0) and set(axes.tolist()) <= {2, 3, -1, -2} and not np.any(steps != 1)


def _final_upsampling(proto) -> tuple[str, StencilHead] | None:
    """The FCN's last transposed convolution, where the graph's logits are its output cropped at the
    bottom and right (Slices from 0), one constant kernel per class, no bias, the shape
    :func:`head_for` takes: the name of its input (the class scores at 1/F) and its head; None for
    any other graph, which is then run whole."""
    import onnx
    from onnx import numpy_helper

    tensors = onnx_constants(proto)

    def constant(name: str) -> np.ndarray | None:
        return numpy_helper.to_array(tensors[name]) if name in tensors else None

    producers = {o: n for n in proto.graph.node for o in n.output}
    node = producers.get(LOGITS_NAME)
    while node is not None and node.op_type == "Slice":
        if not _crops_height_or_width(node, constant):
            return None
        node = producers.get(node.input[0])
    if node is None or node.op_type != "ConvTranspose" or len(node.input) != 2:
        return None
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    kernel = constant(node.input[1])  # (C, C / group, k, k)
    if kernel is None or kernel.dtype != np.float32 or kernel.ndim != 4 or kernel.shape[1] != 1 or a.get("group", 1) != kernel.shape[0]:
        return None  # float32 scores only: the cut graph's output is declared so
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or "output_shape" in a:
        return None
    pads = list(a.get("pads", [0, 0, 0, 0]))
    head = head_for(kernel[:, 0], a.get("strides", [1, 1]), pads[:2], pads[2:], a.get("output_padding", [0, 0]), a.get("dilations", [1, 1]))
    return (node.input[0], head) if head is not None else None


def _graph_up_to(proto, name: str) -> None:
    """Make ``name`` the graph's one output and drop every node and initializer it does not need (in
    place). Not ``onnx.utils.Extractor``: it needs shape information the fp32 export lacks for that
    tensor ("not found in value_infos")."""
    import onnx

    graph = proto.graph
    producers = {o: i for i, n in enumerate(graph.node) for o in n.output}
    needed, todo = set(), [name]
    while todo:
        i = producers.get(todo.pop())
        if i is not None and i not in needed:
            needed.add(i)
            todo.extend(graph.node[i].input)
    nodes = [n for i, n in enumerate(graph.node) if i in needed]
    used = {t for n in nodes for t in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.node[:], graph.output[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))


class OnnxRuntimeBackend(Backend):
    """``stencil_head``: where the graph ends in the FCN's final upsampling, the session runs the
    graph up to the class scores at 1/F and :class:`StencilHead` does the rest on the calling thread,
    as on OpenVINO. ONNX Runtime spent 13 of 36 ms a 640x360 INT8 frame on that step (one thread,
    AMD EPYC; BENCHMARKS.md, 2026-12-06, sixth sitting). False runs the whole graph.

    ``streams`` > 1: that many frames inferred at once from different threads (a session runs
    concurrent calls), the ``threads`` split among them, as OpenVINO's streams: two cameras' frames
    side by side on a thread each. With two 640x480 cameras the node served 498-544 of 600 frames a
    camera with one stream on both threads and 575-577 with two (same sitting)."""

    name = "onnxruntime-cpu"

    def __init__(self, onnx_path: str | Path, threads: int = 0, stencil_head: bool = True, streams: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        so = ort.SessionOptions()
        threads = threads or (os.cpu_count() or 1)
        self.streams = max(1, min(streams, threads))
        so.intra_op_num_threads = max(1, threads // self.streams)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no spinning: ONNX Runtime's threads otherwise spin between and after runs, CPU that the
        # frame's other work on these cores needed (2 x 640x480 cameras: 411-466 -> 548-550 of 600
        # frames served; one 480x360 camera: 54-59 -> 32-36 ms of CPU a frame, latency +1 ms)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            proto = onnx.load(str(onnx_path))
        except Exception as exc:  # protobuf's DecodeError names neither the file nor what it is
            raise ValueError(f"{onnx_path}: not a readable ONNX model ({exc.__class__.__name__}: {exc})") from exc
        self.config = proto_config(proto)
        inp = proto.graph.input[0]
        self.input_name = inp.name
        #: a graph exported with symbolic height/width takes every frame size (per instance)
        self.dynamic = any(not d.HasField("dim_value") for d in inp.type.tensor_type.shape.dim[2:])
        cut = _final_upsampling(proto) if stencil_head else None
        self._head = None if cut is None else cut[1]
        if cut is not None:
            _graph_up_to(proto, cut[0])
            self._outputs = [cut[0]]
        else:
            names = {o.name for o in proto.graph.output}
            self._outputs = [MASK_NAME, CONFIDENCE_NAME] if CONFIDENCE_NAME in names else [MASK_NAME]
        self.session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def infer(self, batch: np.ndarray) -> Inference:
        x = np.ascontiguousarray(batch, np.float32)
        out = self.session.run(self._outputs, {self.input_name: x})
        if self._head is None:
            return Inference(*out)
        return Inference(*self._head.batch(out[0], (x.shape[3], x.shape[2])))
