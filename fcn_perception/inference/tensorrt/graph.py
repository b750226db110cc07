"""What TensorRT's ONNX parser will make of a graph, judged from the file alone (no TensorRT here).

A graph TensorRT cannot parse must be refused before a build starts, with the reason, instead of
after minutes on the vehicle's GPU: ops outside onnx-tensorrt's matrix, Q/DQ of anything but INT8
(ONNX Runtime's INT32 bias DequantizeLinear, its asymmetric UINT8 activations) and non-zero zero points.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper

from fcn_perception.inference.tensorrt.parser_matrix import OPS, QDQ_ZERO_POINT
from fcn_perception.model.config import INPUT_NAME, onnx_constants

_TYPE_NAMES = {
    onnx.TensorProto.FLOAT: "FP32",
    onnx.TensorProto.FLOAT16: "FP16",
    onnx.TensorProto.INT8: "INT8",
    onnx.TensorProto.UINT8: "UINT8",
    onnx.TensorProto.INT32: "INT32",
    onnx.TensorProto.INT64: "INT64",
    onnx.TensorProto.BOOL: "BOOL",
}
#: at most this many reasons are listed in an error message (the count is always given)
SHOWN = 3


def _type(code: int) -> str:
    return _TYPE_NAMES.get(code, onnx.TensorProto.DataType.Name(code))


def _qdq_refusals(proto: onnx.ModelProto) -> list[str]:
    """Q/DQ nodes the parser refuses: a DequantizeLinear of a non-INT8 tensor, a QuantizeLinear to a
    non-INT8 type (its zero point's type; none means UINT8 in ONNX), a zero point that is not 0."""
    values = onnx_constants(proto)
    quantized_type = {}  # QuantizeLinear output -> its element type
    for node in proto.graph.node:
        if node.op_type == "QuantizeLinear":
            zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            quantized_type[node.output[0]] = zp.data_type if zp is not None else onnx.TensorProto.UINT8
    out = []
    for node in proto.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if node.op_type == "DequantizeLinear":
            x = node.input[0]
            code = values[x].data_type if x in values else quantized_type.get(x)
            if code is not None and code != onnx.TensorProto.INT8:
                out.append(f"{node.name or x} (DequantizeLinear): input is {_type(code)}; TensorRT dequantizes INT8 only")
        elif quantized_type[node.output[0]] != onnx.TensorProto.INT8:
            out.append(f"{node.name or node.output[0]} (QuantizeLinear): output is {_type(quantized_type[node.output[0]])}; TensorRT quantizes to INT8 only")
        zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is not None and zp.data_type != onnx.TensorProto.INT8:
            out.append(f"{node.name or node.output[0]} ({node.op_type}): zero point is {_type(zp.data_type)}; TensorRT takes INT8 zero points only")
        if zp is not None and (numpy_helper.to_array(zp) != QDQ_ZERO_POINT).any():
            out.append(f"{node.name or node.output[0]} ({node.op_type}): zero point is not 0; TensorRT takes symmetric scales only")
    return out


def parser_refusals(proto: onnx.ModelProto) -> list[str]:
    """Every reason TensorRT's ONNX parser would refuse this graph (empty: it parses), per the
    matrix in ``parser_matrix``: its op set, and the Q/DQ types and zero points."""
    out = [
        f"{n.name or n.output[0]}: op {n.domain + '.' if n.domain else ''}{n.op_type} is not in onnx-tensorrt's matrix"
        for n in proto.graph.node
        if n.domain not in ("", "ai.onnx") or n.op_type not in OPS
    ]
    return out + _qdq_refusals(proto)


def onnx_graph_info(onnx_path: str | Path) -> tuple[list[int], str]:
    """(input dims with -1 for a free one, graph kind): ``fp32``, ``fp16``, ``qdq-int8`` (a Q/DQ graph
    TensorRT parses: symmetric INT8, float biases) or ``qdq-other`` (one it refuses, e.g. ONNX
    Runtime's asymmetric uint8 Q/DQ or INT32 biases; :func:`parser_refusals` says why)."""
    proto = onnx.load(str(onnx_path), load_external_data=False)
    inp = next(i for i in proto.graph.input if i.name == INPUT_NAME)
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node):
        return dims, "qdq-other" if _qdq_refusals(proto) else "qdq-int8"
    half = any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer)
    return dims, "fp16" if half else "fp32"


def check_parsable(onnx_path: str | Path, hint: str = "") -> None:
    """A ValueError naming the first reasons (and their count) when TensorRT would refuse the graph."""
    reasons = parser_refusals(onnx.load(str(onnx_path), load_external_data=False))
    if reasons:
        more = f" (and {len(reasons) - SHOWN} more)" if len(reasons) > SHOWN else ""
        raise ValueError(
            f"{onnx_path}: TensorRT's ONNX parser would refuse {len(reasons)} node(s): {'; '.join(reasons[:SHOWN])}{more}{'. ' + hint if hint else ''}"
        )
