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
