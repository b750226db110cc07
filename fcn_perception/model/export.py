"""ONNX export of a trained FCN: the artefact ONNX Runtime and TensorRT both consume."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from fcn_perception.files import atomic_write_bytes
from fcn_perception.model.config import CONFIDENCE_NAME, INPUT_NAME, LOGITS_NAME, MASK_NAME, metadata_for
from fcn_perception.model.fcn import FCN, class_and_confidence

OPSET = 17


class _WithHead(nn.Module):
    """Adds the per-pixel class and confidence to the graph (:func:`class_and_confidence`) so runtimes
    return compact uint8 images. ``half``: the network computes in float16 between float32 input and
    logits (a strongly typed fp16 graph, what TensorRT 11 builds fp16 engines from)."""

    def __init__(self, model: FCN, half: bool = False) -> None:
        super().__init__()
        self.model = model.half() if half else model
        self.half = half

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.model(x.half()).float() if self.half else self.model(x)
        ids, confidence = class_and_confidence(logits)
        # class ids cast from float32: TensorRT casts to UINT8 only from FLOAT/HALF
        return logits, ids.to(torch.uint8), confidence


def export_onnx(model: FCN, out: str | Path, height: int = 360, width: int = 480, dynamic: bool = False, half: bool = False) -> Path:
    """Export with fixed ``height x width`` (fastest in ONNX Runtime/TensorRT) or dynamic H/W/batch;
    ``half``: float16 weights and compute, float32 input and outputs.

    The class list, normalisation and input size go into the model metadata so a runtime needs
    nothing but the .onnx file.
    """
    import copy

    model = (copy.deepcopy(model) if half else model).eval().cpu()
    dummy = torch.zeros(1, 3, height, width)
    axes = {
        INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
        LOGITS_NAME: {0: "batch", 2: "height", 3: "width"},
        MASK_NAME: {0: "batch", 1: "height", 2: "width"},
        CONFIDENCE_NAME: {0: "batch", 1: "height", 2: "width"},
    }
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (which needs onnxscript);
        # it still exports this plain conv graph exactly (tested to 1e-4), so its warning is muted.
        warnings.simplefilter("ignore", DeprecationWarning)
        tmp_path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            _WithHead(model, half).eval(),
            (dummy,),
            str(tmp_path),
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME, MASK_NAME, CONFIDENCE_NAME],
            opset_version=OPSET,
            dynamic_axes=axes if dynamic else None,
            dynamo=False,
            do_constant_folding=True,
        )
        proto = onnx.load(str(tmp_path))
    meta = {**metadata_for(model.cfg, None if dynamic else (width, height)), **({"precision": "fp16"} if half else {})}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    atomic_write_bytes(out, proto.SerializeToString())
    return Path(out)
