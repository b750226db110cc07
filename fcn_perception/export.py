"""ONNX export of a trained FCN: the artefact ONNX Runtime and TensorRT both consume."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from .fcn import FCN, ModelConfig

INPUT_NAME, LOGITS_NAME, MASK_NAME = "image", "logits", "mask"
OPSET = 17


class _WithArgmax(nn.Module):
    """Adds the per-pixel argmax to the graph so runtimes return a compact uint8 mask."""

    def __init__(self, model: FCN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(x)
        return logits, logits.argmax(1).to(torch.uint8)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temp file in the same folder + rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide shared models from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_onnx(model: FCN, out: str | Path, height: int = 360, width: int = 480, dynamic: bool = False) -> Path:
    """Export with fixed ``height x width`` (fastest in ONNX Runtime/TensorRT) or dynamic H/W/batch.

    The class list, normalisation and input size go into the model metadata so a runtime needs
    nothing but the .onnx file.
    """
    model = model.eval().cpu()
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
            _WithArgmax(model).eval(),
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
    cfg = model.cfg
    meta = {
        "classes": json.dumps(list(cfg.classes)),
        "mean": json.dumps(list(cfg.mean)),
        "std": json.dumps(list(cfg.std)),
        "input_size": json.dumps([width, height] if not dynamic else list(cfg.input_size)),
        "backbone": cfg.backbone,
        "variant": cfg.variant,
        "dynamic": json.dumps(dynamic),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    atomic_write_bytes(out, proto.SerializeToString())
    return Path(out)


def config_from_metadata(meta: dict[str, str]) -> ModelConfig:
    """The inverse of the metadata :func:`export_onnx` writes: everything a runtime needs beside the graph."""
    return ModelConfig(
        backbone=meta.get("backbone", "efficientnet_lite0"),
        variant=meta.get("variant", "fcn8s"),
        classes=json.loads(meta["classes"]),
        mean=tuple(json.loads(meta["mean"])),
        std=tuple(json.loads(meta["std"])),
        input_size=tuple(json.loads(meta["input_size"])),
    )


def read_onnx_config(path: str | Path) -> ModelConfig:
    """Config of an exported model from its metadata alone (no inference session built)."""
    proto = onnx.load(str(path), load_external_data=False)
    return config_from_metadata({p.key: p.value for p in proto.metadata_props})


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
