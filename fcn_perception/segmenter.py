"""The one inference pipeline (preprocess -> infer -> postprocess) that node, replay, eval and bench share."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .backends import InferenceError, create_backend
from .classes import palette_bgr
from .model_store import resolve_model
from .preprocess import preprocess_rgb


@dataclass
class SegmenterConfig:
    model: str = ""  # path of a .pt checkpoint or .onnx file; "" = the shipped default model
    backend: str = "auto"  # auto | onnxruntime | torch
    input_width: int = 0  # 0 = the size the model was trained at
    input_height: int = 0
    threads: int = 0  # CPU threads for inference, 0 = all cores
    device: str = "auto"  # torch backend: auto | cpu | cuda
    cache_dir: str = ""  # derived files (ONNX, engines); "" = FCN_PERCEPTION_CACHE or the XDG cache
    engine: str = ""  # a TensorRT engine from outside the cache, trusted explicitly
    device_preprocess: str = "auto"  # on | off | auto (= on when the backend runs on a GPU): resize/normalise/argmax there


@dataclass
class Segmentation:
    mask: np.ndarray  # (H, W) uint8 class ids at the camera's resolution
    timings_ms: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Frames in any size, masks out at that same size; the model runs at its fixed input size."""

    def __init__(self, cfg: SegmenterConfig | None = None) -> None:
        self.cfg = cfg or SegmenterConfig()
        self.model_path: Path = resolve_model(self.cfg.model)
        size = (self.cfg.input_width, self.cfg.input_height) if self.cfg.input_width and self.cfg.input_height else None
        self.backend = create_backend(
            self.cfg.backend, self.model_path, size, self.cfg.threads, self.cfg.device, cache=self.cfg.cache_dir, engine=self.cfg.engine
        )
        mc = self.backend.config
        self.classes: list[str] = list(mc.classes)
        self.input_size: tuple[int, int] = size or tuple(mc.input_size)
        self._mean, self._std = mc.mean, mc.std
        self._lut = palette_bgr(len(self.classes))
        device = getattr(self.backend, "device", None)
        if self.cfg.device_preprocess not in ("auto", "on", "off"):
            raise ValueError(f"device_preprocess must be auto, on or off, got {self.cfg.device_preprocess!r}")
        on_gpu = device is not None and device.type == "cuda"
        self.on_device = hasattr(self.backend, "infer_device") and (self.cfg.device_preprocess == "on" or (self.cfg.device_preprocess == "auto" and on_gpu))
        self.warmup()

    def warmup(self, runs: int = 2) -> None:
        """Run the backend before the first real frame: lazy allocations and kernel selection happen here."""
        w, h = self.input_size
        for _ in range(runs):
            self.backend.infer(np.zeros((1, 3, h, w), np.float32))

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return preprocess_rgb(rgb, self.input_size, self._mean, self._std)

    def postprocess(self, mask: np.ndarray, height: int, width: int) -> np.ndarray:
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        return mask

    def segment(self, rgb: np.ndarray) -> Segmentation:
        if self.on_device:
            return self._segment_on_device(rgb)
        t0 = time.perf_counter()
        x = self.preprocess(rgb)
        t1 = time.perf_counter()
        mask = self._infer(self.backend.infer, x)
        if mask.shape != tuple(x.shape[2:]) or mask.dtype != np.uint8:
            raise InferenceError(f"{self.backend_name} returned a {mask.dtype} mask of shape {mask.shape}, expected uint8 {tuple(x.shape[2:])}")
        t2 = time.perf_counter()
        mask = self.postprocess(mask, rgb.shape[0], rgb.shape[1])
        t3 = time.perf_counter()
        return Segmentation(mask, {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3})

    def _infer(self, call, x):
        """The first image of ``call(x)``; any failure inside the backend becomes an :class:`InferenceError`."""
        try:
            return call(x)[0]
        except Exception as exc:
            raise InferenceError(f"{self.backend_name}: {exc.__class__.__name__}: {exc}") from exc

    def _segment_on_device(self, rgb: np.ndarray) -> Segmentation:
        """Upload the uint8 frame, resize + normalise + infer + argmax + resize back on the backend's device;
        only the uint8 mask crosses back to the host."""
        import torch
        import torch.nn.functional as F

        from .preprocess import check_rgb, preprocess_tensor

        check_rgb(rgb)
        device = self.backend.device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # honest per-stage times
        h, w = rgb.shape[:2]
        with torch.inference_mode():
            t0 = time.perf_counter()
            x = preprocess_tensor(torch.from_numpy(rgb).to(device, non_blocking=True), self.input_size, self._mean, self._std)
            sync()
            t1 = time.perf_counter()
            mask = self._infer(self.backend.infer_device, x)
            sync()
            t2 = time.perf_counter()
            if tuple(mask.shape) != (h, w):
                mask = F.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")[0, 0].to(torch.uint8)
            out = mask.cpu().numpy()
            t3 = time.perf_counter()
        return Segmentation(out, {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3})

    def overlay(self, bgr: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """Class colours blended over the frame, for people looking at RViz, Foxglove or a PNG."""
        colours = cv2.LUT(cv2.merge([mask, mask, mask]), self._lut.reshape(256, 1, 3))  # 3x faster than numpy indexing
        return cv2.addWeighted(bgr, 1.0 - alpha, colours, alpha, 0.0)
