"""Per-frame pipeline, free of ROS: decode -> segment -> drivable area, with per-stage timings.

The node, replay, eval and bench all run frames through :class:`Pipeline`, so a number measured
offline is the number the car gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .drivable import DrivableConfig, Region, class_lut, ego_region, extract_regions
from .image_codec import DEFAULT_MAX_PIXELS, decode
from .segmenter import Segmenter, SegmenterConfig

STAGES = ("decode", "preprocess", "infer", "postprocess", "drivable")


@dataclass
class FrameResult:
    rgb: np.ndarray  # decoded frame, HxWx3 RGB
    mask: np.ndarray  # HxW uint8 class ids, same size as the frame
    regions: list[Region]
    ego: Region | None  # None: no drivable area ahead (a valid answer)
    timings_ms: dict[str, float] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        segmenter: Segmenter | SegmenterConfig | None = None,
        drivable: DrivableConfig | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.segmenter = segmenter if isinstance(segmenter, Segmenter) else Segmenter(segmenter)
        self.drivable = drivable or DrivableConfig()
        self.max_pixels = max_pixels
        self.set_drivable(self.drivable)

    def set_drivable(self, cfg: DrivableConfig) -> None:
        """Swap the drivable-area settings (runtime parameter updates); unknown class names are refused."""
        classes = self.segmenter.classes
        unknown = [c for c in cfg.classes if c not in classes]
        if unknown or not cfg.classes:
            raise ValueError(f"drivable classes {unknown or cfg.classes} not in the model's classes {classes}")
        self._lut = class_lut([classes.index(c) for c in cfg.classes])
        self.drivable = cfg

    def process(self, msg) -> FrameResult:
        """An Image or CompressedImage message (rclpy or rosbags); raises BadFrame for unusable input."""
        t = time.perf_counter()
        rgb = decode(msg, self.max_pixels)
        result = self.process_rgb(rgb)
        result.timings_ms = {"decode": (time.perf_counter() - t) * 1e3 - sum(result.timings_ms.values()), **result.timings_ms}
        return result

    def process_rgb(self, rgb: np.ndarray) -> FrameResult:
        seg = self.segmenter.segment(rgb)
        t = time.perf_counter()
        regions = extract_regions(seg.mask, self._lut, self.drivable)
        ego = ego_region(regions, rgb.shape[1], rgb.shape[0], self.drivable)
        timings = {**seg.timings_ms, "drivable": (time.perf_counter() - t) * 1e3}
        return FrameResult(rgb, seg.mask, regions, ego, timings)

    def overlay_bgr(self, result: FrameResult, alpha: float = 0.5) -> np.ndarray:
        """Class colours plus the ego drivable polygon (green outline, holes in red) for people to look at."""
        img = self.segmenter.overlay(np.ascontiguousarray(result.rgb[..., ::-1]), result.mask, alpha)
        if result.ego is not None:
            thickness = max(1, img.shape[1] // 320)
            cv2.polylines(img, [np.round(result.ego.outer).astype(np.int32)], True, (0, 255, 0), thickness, cv2.LINE_AA)
            holes = [np.round(h).astype(np.int32) for h in result.ego.holes]
            if holes:
                cv2.polylines(img, holes, True, (0, 0, 255), thickness, cv2.LINE_AA)
        return img
