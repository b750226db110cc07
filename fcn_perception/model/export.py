"""ONNX export of a trained FCN: the artefact ONNX Runtime and TensorRT both consume."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from fcn_perception.files import atomic_write_bytes
from fcn_perception.model.config import INPUT_NAME, LOGITS_NAME, MASK_NAME, metadata_for
from fcn_perception.model.fcn import FCN

OPSET = 17


class _WithArgmax(nn.Module):
    """Adds the per-pixel argmax to the graph so runtimes return a compact uint8 mask. ``half``: the
    network computes in float16 between float32 input and logits (a strongly typed fp16 graph, what
    TensorRT 11 builds fp16 engines from)."""

    def __init__(self, model: FCN, half: bool = False) -> None:
        super().__init__()
        self.model = model.half() if half else model
        self.half = half

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x.half()).float() if self.half else self.model(x)
        # class ids in float32 (exact for small integers): TensorRT casts to UINT8 only from FLOAT/HALF
        return logits, argmax_first(logits).to(torch.uint8)


def argmax_first(logits: torch.Tensor) -> torch.Tensor:
    """``logits.argmax(1)`` as float32, written as one running max over the classes.

    The same mask as ArgMax (a strict ``>`` keeps the first of equal scores, as ArgMax does), in a
    form the runtimes fuse into one elementwise pass: OpenVINO runs ArgMax as a generic TopK that
    took a third of the whole network's time at 480x360 (``bench --profile``), the running max a
    tenth of that; ONNX Runtime is as fast either way (MODEL.md, "Speed").
    """
    best = logits[:, 0]
    ids = torch.zeros_like(best)
    for c in range(1, logits.shape[1]):
        score = logits[:, c]
        ids = torch.where(score > best, torch.full_like(best, float(c)), ids)
        best = torch.maximum(best, score)
    return ids


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
    }
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export (which needs onnxscript);
        # it still exports this plain conv graph exactly (tested to 1e-4), so its warning is muted.
        warnings.simplefilter("ignore", DeprecationWarning)
        tmp_path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            _WithArgmax(model, half).eval(),
            (dummy,),
            str(tmp_path),
            input_names=[INPUT_NAME],
            output_names=[LOGITS_NAME, MASK_NAME],
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
