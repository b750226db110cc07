"""Inference backends behind one call: normalised NCHW float32 in, uint8 class-id masks out.

The argmax happens inside the backend so a GPU backend only ships the compact mask to the host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .export import config_from_metadata, export_onnx, file_sha256
from .fcn import FCN, ModelConfig, load_model
from .model_store import cache_dir, cache_file

BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


class InferenceError(RuntimeError):
    """The backend failed on a frame (driver error, out of memory, a broken session) — as opposed to a
    bad frame. The node counts these apart and applies its ``on_backend_failure`` policy."""


class Backend(Protocol):
    name: str
    config: ModelConfig

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 normalised -> (N, H, W) uint8 class ids."""


class TorchBackend:
    """Eager PyTorch: the reference every other backend is compared with; FP16 + channels-last on CUDA."""

    def __init__(self, model: FCN, device: str = "auto", fp16: bool | None = None, threads: int = 0) -> None:
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.fp16 = self.device.type == "cuda" if fp16 is None else fp16
        if threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(threads)
        self.model = model.eval().to(self.device)
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.fp16:
            self.model = self.model.half()
        self.config = model.cfg
        self.name = f"torch-{self.device.type}{'-fp16' if self.fp16 else ''}"

    @torch.inference_mode()
    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.infer_device(torch.from_numpy(batch).to(self.device, non_blocking=True)).cpu().numpy()

    @torch.inference_mode()
    def infer_device(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 on this backend's device -> (N, H, W) uint8 class ids, left there."""
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.fp16:
            x = x.half()
        return self.model(x).argmax(1).to(torch.uint8)


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU execution provider: the real-time path on machines without a GPU."""

    def __init__(self, onnx_path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.config = config_from_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.input_name = self.session.get_inputs()[0].name
        self.name = "onnxruntime-cpu"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(["mask"], {self.input_name: np.ascontiguousarray(batch, np.float32)})[0]


def onnx_for(model_path: Path, width: int, height: int, cache: str | Path = "", model: FCN | None = None) -> Path:
    """The fixed-size ONNX export of a checkpoint, made once and cached by the checkpoint's hash
    (``model``: the checkpoint already loaded, to avoid loading it twice)."""
    key = file_sha256(model_path)[:16]
    out = cache_file(cache_dir(cache), "onnx", f"{model_path.stem}-{key}-{width}x{height}.onnx")
    if not out.is_file():
        export_onnx(model or load_model(model_path), out, height=height, width=width)
    return out


def create_backend(
    name: str,
    model_path: Path,
    input_size: tuple[int, int] | None = None,
    threads: int = 0,
    device: str = "auto",
    precision: str = "fp16",
    cache: str | Path = "",
    engine: str | Path = "",
) -> Backend:
    """``input_size`` (w, h) fixes the ONNX graph's shape; ``None`` takes the size the model was trained for.

    auto: TensorRT when it is importable and a GPU is present, else PyTorch on CUDA, else ONNX Runtime.
    ``engine``: a TensorRT engine from outside the cache, trusted explicitly (tensorrt only).
    """
    from . import tensorrt_backend

    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "tensorrt" and not tensorrt_backend.available():
        raise ValueError(f"backend tensorrt: {tensorrt_backend.UNAVAILABLE_REASON}")
    if model_path.suffix in (".engine", ".plan", ".trt"):
        raise ValueError(f"{model_path}: TensorRT engines are not models; give the .pt or .onnx it was built from, and the engine as trusted_engine")
    use_trt = name == "tensorrt" or (name == "auto" and device != "cpu" and tensorrt_backend.available())
    if engine and not use_trt:
        raise ValueError(f"trusted_engine {engine} needs the tensorrt backend ({tensorrt_backend.UNAVAILABLE_REASON} and backend tensorrt or auto)")

    def trt(onnx: Path):
        return tensorrt_backend.TensorRTBackend(onnx, precision, engine=engine or None, cache=cache)

    if model_path.suffix == ".onnx":
        if name == "torch":
            raise ValueError("the torch backend needs a .pt checkpoint, not an .onnx file")
        return trt(model_path) if use_trt else OnnxRuntimeBackend(model_path, threads)
    if name == "torch" or (name == "auto" and not use_trt and torch.cuda.is_available() and device != "cpu"):
        return TorchBackend(load_model(model_path), device=device, threads=threads)
    model = None
    if input_size is None:
        model = load_model(model_path)
        input_size = tuple(model.cfg.input_size)
    onnx_path = onnx_for(model_path, *input_size, cache=cache, model=model)
    return trt(onnx_path) if use_trt else OnnxRuntimeBackend(onnx_path, threads)
