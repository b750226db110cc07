"""Engines on disk: a build key holds everything an engine depends on, and a manifest beside each
engine holds its key and SHA-256, so a stale or swapped engine is rebuilt, never loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from fcn_perception.files import atomic_write_bytes, file_sha256
from fcn_perception.inference.model_store import cache_dir, cache_file


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def build_key(onnx_path: Path, precision: str, shapes: dict[str, tuple], calibration: str = "") -> dict:
    """A change in any of these means a rebuild, never a load. ``calibration``: hash of the INT8
    calibration frames (their scales are baked into the engine)."""
    import tensorrt as trt

    return {
        "onnx_sha256": file_sha256(onnx_path),
        "tensorrt": trt.__version__,
        "gpu": gpu_name(),
        "precision": precision,
        "shapes": {k: list(map(list, v)) for k, v in shapes.items()},
        "calibration": calibration,
    }


def frames_hash(frames: list[np.ndarray] | None) -> str:
    if not frames:
        return ""
    h = hashlib.sha256()
    for f in frames:
        h.update(np.ascontiguousarray(f).tobytes())
    return h.hexdigest()[:16]


def engine_paths(key: dict, cache: str | Path = "") -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    root = cache_dir(cache)
    return cache_file(root, "engines", f"{digest}.engine"), cache_file(root, "engines", f"{digest}.json")


def cached_engine(key: dict, cache: str | Path = "") -> Path | None:
    """The engine built for exactly this key, or None."""
    engine, manifest = engine_paths(key, cache)
    if engine.is_file() and manifest.is_file() and json.loads(manifest.read_text()).get("key") == key:
        return engine
    return None


def cached_int8(key: dict, cache: str | Path) -> Path | None:
    """An INT8 engine built earlier for the same model, TensorRT, GPU and shapes, with whatever frames."""
    folder = cache_dir(cache) / "engines"
    want = {k: v for k, v in key.items() if k != "calibration"}
    for manifest in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        found = json.loads(manifest.read_text()).get("key", {})
        if {k: v for k, v in found.items() if k != "calibration"} == want and found.get("calibration") and manifest.with_suffix(".engine").is_file():
            return manifest.with_suffix(".engine")
    return None


def timing_cache_path(key: dict, cache: str | Path = "") -> Path:
    """One timing cache per GPU and TensorRT version, shared by every engine they build."""
    gpu = key["gpu"].replace(" ", "_").replace("/", "_")
    return cache_file(cache_dir(cache), "engines", f"timing-{gpu}-{key['tensorrt']}.cache")


def write_engine(key: dict, serialized: bytes, cache: str | Path = "") -> Path:
    engine, manifest = engine_paths(key, cache)
    atomic_write_bytes(engine, serialized)
    atomic_write_bytes(manifest, json.dumps({"key": key, "engine_sha256": file_sha256(engine)}, indent=2).encode())
    return engine


def read_verified(engine_file: Path) -> bytes:
    """The engine's bytes, read once (the bytes hashed are the bytes deserialized), checked against
    its manifest."""
    data = engine_file.read_bytes()
    manifest = json.loads(engine_file.with_suffix(".json").read_text())
    if manifest["engine_sha256"] != hashlib.sha256(data).hexdigest():
        raise ValueError(f"{engine_file}: does not match its manifest; delete it to rebuild")
    return data
