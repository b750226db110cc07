"""Where models live: the shipped default, its manifest (SHA-256), and the cache of derived files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fcn_perception.files import file_sha256

PACKAGE_MODELS = Path(__file__).resolve().parents[1] / "models"
#: The shipped default, as a checkpoint (.pt, for training and the torch backend), its ONNX export
#: with free height/width (.onnx, ONNX Runtime without PyTorch) and the INT8 one (.int8.onnx).
DEFAULT_MODEL = "lanes_lite0_fcn4s"
MODEL_KINDS = {"pt": ".pt", "onnx": ".onnx", "int8": ".int8.onnx"}
MANIFEST = PACKAGE_MODELS / "manifest.json"
#: What ONNX Runtime serves by default: the INT8 export, shipped because it stays within 0.5 mIoU of
#: fp32 (MODEL.md); precision fp32 selects the fp32 export.
DEFAULT_CPU_KIND = "int8"


def default_model_path(kind: str = "pt") -> Path:
    return PACKAGE_MODELS / (DEFAULT_MODEL + MODEL_KINDS[kind])


def cache_dir(override: str | Path = "") -> Path:
    """Derived artefacts (ONNX exports, engines): ``override`` (the node's cache_dir parameter), else
    ``FCN_PERCEPTION_CACHE``, else the XDG default. Resolved, created private (0700) if missing."""
    root = override or os.environ.get("FCN_PERCEPTION_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fcn_perception"
    path = Path(root).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise ValueError(f"cache directory {path} exists and is not a directory")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def cache_file(root: Path, *parts: str) -> Path:
    """A path under the cache ``root``; refuses one that would land outside it (``..``, absolute parts,
    a symlink pointing elsewhere), so no name built from user input can write anywhere else."""
    path = root.joinpath(*parts).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"refusing to write {path}: outside the cache directory {root}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def resolve_model(path: str | Path | None, kind: str = "pt") -> Path:
    """The model a user named, or the shipped default of ``kind`` when none is given.

    A file in the package's model folder must match its manifest entry (SHA-256): a truncated or
    swapped file, or a manifest that lost the entry, is refused rather than loaded unchecked.
    """
    if not path:
        model = default_model_path(kind)
        if not model.is_file():
            raise FileNotFoundError(f"the shipped default model is missing: {model} (reinstall the package)")
    else:
        model = Path(path).expanduser().resolve()
        if not model.is_file():
            raise FileNotFoundError(f"model file not found: {model}")
    if model.parent == PACKAGE_MODELS.resolve() or model.parent == PACKAGE_MODELS:
        verify_shipped(model)
    return model


def shipped_digest(model: Path) -> str:
    """The manifest's SHA-256 of a shipped file (checked against the file by :func:`resolve_model`)."""
    return json.loads(MANIFEST.read_text())["models"][model.name]["sha256"]


def verify_shipped(model: Path) -> None:
    if not MANIFEST.is_file():
        raise ValueError(f"{MANIFEST} is missing: the shipped models cannot be verified (reinstall the package)")
    entry = json.loads(MANIFEST.read_text()).get("models", {}).get(model.name)
    if not entry or "sha256" not in entry:
        raise ValueError(f"{model.name} has no entry in {MANIFEST.name}: refusing an unverified shipped model")
    if file_sha256(model) != entry["sha256"]:
        raise ValueError(f"{model}: SHA-256 does not match {MANIFEST.name}; the file is corrupt or was replaced")
