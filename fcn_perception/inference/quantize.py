"""INT8 static quantisation (QDQ) of the ONNX export for ONNX Runtime CPU, calibrated on real frames."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx

from fcn_perception.files import atomic_write_bytes
from fcn_perception.inference.frames import calibration_batch
from fcn_perception.model.config import INPUT_NAME, config_from_metadata


class _Frames:
    """onnxruntime CalibrationDataReader over preprocessed frames (duck-typed: get_next)."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self._it = iter(frames)

    def get_next(self) -> dict | None:
        x = next(self._it, None)
        return None if x is None else {INPUT_NAME: x}


def quantize_int8(onnx_path: str | Path, out: str | Path, calib_dir: str | Path, frames: int = 100, per_channel: bool = True) -> Path:
    """QDQ INT8 with per-channel weights; the argmax/uint8 tail and the upsampling stay in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    proto = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in proto.metadata_props}
    cfg = config_from_metadata(meta)
    batch = calibration_batch(calib_dir, cfg.input_size, cfg.mean, cfg.std, frames)
    upsampling = [n.name for n in proto.graph.node if n.op_type in ("ConvTranspose", "ArgMax", "Cast")]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ONNX Runtime's symbolic shape inference gives up on free height/width (crop after the
        # transposed convolutions); ONNX's own shape inference is enough for a conv graph.
        dynamic = meta.get("dynamic") == "true"
        quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=dynamic)
        q = Path(tmp) / "q.onnx"
        quantize_static(
            str(pre),
            str(q),
            _Frames(batch),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=upsampling,
        )
        qproto = onnx.load(str(q))
    del qproto.metadata_props[:]
    for key, value in {**meta, "precision": "int8"}.items():
        qproto.metadata_props.add(key=key, value=value)
    atomic_write_bytes(out, qproto.SerializeToString())
    return Path(out)
