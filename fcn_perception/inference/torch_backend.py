"""Eager PyTorch backend: the reference every other backend is compared with; FP16 + channels-last on CUDA."""

from __future__ import annotations

import numpy as np
import torch

from fcn_perception.inference.base import Backend, Inference
from fcn_perception.model.fcn import FCN, class_and_confidence


class TorchBackend(Backend):
    dynamic = True  # eager PyTorch takes any input size

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
    def infer(self, batch: np.ndarray) -> Inference:
        mask, confidence = self.infer_device(torch.from_numpy(batch).to(self.device, non_blocking=True))
        return Inference(mask.cpu().numpy(), confidence.cpu().numpy())

    @torch.inference_mode()
    def infer_device(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) float32 on this backend's device -> (N, H, W) uint8 class ids and confidence, left there."""
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.fp16:
            x = x.half()
        ids, confidence = class_and_confidence(self.model(x).float())
        return ids.to(torch.uint8), confidence
