"""INT8 static quantisation (QDQ) of the ONNX export for ONNX Runtime CPU, calibrated on real frames."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from fcn_perception.files import atomic_write_bytes
from fcn_perception.inference.frames import calibration_batch
from fcn_perception.model.config import INPUT_NAME, config_from_metadata, route_mask_through_float

#: TensorRT's explicit quantisation: signed INT8 with zero points 0, and biases left in float —
#: TensorRT dequantizes INT8 only and quantizes the bias itself (ONNX Runtime's default INT32 bias
#: DequantizeLinear is refused by its parser: "only activation types allowed as input to this layer").
TENSORRT_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}


class _Frames:
    """onnxruntime CalibrationDataReader over preprocessed frames (duck-typed: get_next)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self._it = iter(frames)

    def get_next(self) -> dict | None:
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}


def quantize_int8(
    onnx_path: str | Path, out: str | Path, calib_dir: str | Path, frames: int = 100, per_channel: bool = True, method: str = "minmax", symmetric: bool = False
) -> Path:
    """QDQ INT8 with per-channel weights; the argmax/uint8 tail and the upsampling stay in float.
    ``symmetric``: the graph TensorRT parses (signed INT8, zero points 0, float biases; checked
    against its parser's rules before it is written), else ONNX Runtime's faster asymmetric uint8
    activations."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    cfg = config_from_metadata(meta)
    batch = calibration_batch(calib_dir, cfg.input_size, cfg.mean, cfg.std, frames, keep_aspect=meta.get("dynamic") == "true")
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ONNX Runtime's symbolic shape inference gives up on free height/width (crop after the
        # transposed convolutions); ONNX's own shape inference is enough for a conv graph.
        dynamic = meta.get("dynamic") == "true"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=dynamic)
        float_head = class_score_path(onnx.load(str(pre)), len(cfg.classes))
        q = Path(tmp) / "q.onnx"
        quantize_static(
            str(pre),
            str(q),
            _Frames(batch),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}[method],
            nodes_to_exclude=float_head,
            extra_options=TENSORRT_OPTIONS if symmetric else {},
        )
        qproto = onnx.load(str(q))
    route_mask_through_float(qproto)  # the pre-processing folded the float32 step of the mask cast
    del qproto.metadata_props[:]
    for key, value in {**meta, "precision": "int8"}.items():
        qproto.metadata_props.add(key=key, value=value)
    if symmetric:
        from fcn_perception.inference.tensorrt.graph import SHOWN, parser_refusals

        if reasons := parser_refusals(qproto):
            raise RuntimeError(f"quantize --symmetric made a graph TensorRT would refuse ({len(reasons)}): {'; '.join(reasons[:SHOWN])}")
    atomic_write_bytes(out, qproto.SerializeToString())
    return Path(out)


def class_score_path(proto, num_classes: int) -> list[str]:
    """Names of the nodes from the 1x1 class-score convolutions to the mask: the scores, their learned
    upsampling and skip fusion, the argmax. Kept in float: the trunk, where the FLOPs are, runs INT8,
    while the few small tensors that decide between close class scores keep their precision."""
    inits = {i.name: i for i in proto.graph.initializer}
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    start = [n for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in inits and inits[n.input[1]].dims[0] == num_classes]
    keep, todo = {}, list(start)
    while todo:
        node = todo.pop()
        if node.name in keep:
            continue
        keep[node.name] = node
        for out in node.output:
            todo.extend(consumers.get(out, []))
    return list(keep)
