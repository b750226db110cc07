"""Where models live: the shipped default, its manifest (SHA-256), and the cache of derived files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .export import file_sha256

PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL_NAME = "camvid_lite0_fcn8s.pt"
MANIFEST = PACKAGE_MODELS / "manifest.json"


def default_model_path() -> Path:
    return PACKAGE_MODELS / DEFAULT_MODEL_NAME


def cache_dir() -> Path:
    """Derived artefacts (ONNX exports, engines); ``FCN_PERCEPTION_CACHE`` overrides the XDG default."""
    root = os.environ.get("FCN_PERCEPTION_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fcn_perception"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def resolve_model(path: str | Path | None) -> Path:
    """The model a user named, or the shipped default when none is given.

    Shipped models are checked against the manifest so a truncated or swapped file is refused.
    """
    if not path:
        model = default_model_path()
        if not model.is_file():
            raise FileNotFoundError(f"the shipped default model is missing: {model} (reinstall the package)")
    else:
        model = Path(path).expanduser().resolve()
        if not model.is_file():
            raise FileNotFoundError(f"model file not found: {model}")
    if MANIFEST.is_file():
        entries = json.loads(MANIFEST.read_text()).get("models", {})
        expected = entries.get(model.name, {}).get("sha256") if model.parent == PACKAGE_MODELS else None
        if expected and file_sha256(model) != expected:
            raise ValueError(f"{model}: SHA-256 does not match {MANIFEST.name}; the file is corrupt or was replaced")
    return model
