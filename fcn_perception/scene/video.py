"""Overlay videos people can open anywhere: MPEG-4 Part 2 in .mp4 (OpenCV's wheels carry no H.264
encoder), MJPEG in .avi where that encoder is missing too."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class VideoOut:
    """Frames of one size at a constant rate; the file appears when the first frame is written."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), max(0.1, float(fps))
        self._writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            h, w = bgr.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for fourcc, suffix in (("mp4v", ".mp4"), ("MJPG", ".avi")):
                path = self.path.with_suffix(suffix)
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
                if writer.isOpened():
                    self._writer, self.path, self.size = writer, path, (w, h)
                    break
            else:
                raise ValueError(f"OpenCV cannot write a video at {self.path}")
        if (bgr.shape[1], bgr.shape[0]) != self.size:  # a camera whose resolution changed mid-drive
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(np.ascontiguousarray(bgr))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def recorded_fps(stamps_ns: list[int], default: float = 10.0) -> float:
    """The camera's rate from its stamps (median interval), so a video plays at the recorded pace."""
    if len(stamps_ns) < 2:
        return default
    dt = np.diff(np.sort(np.asarray(stamps_ns, np.int64))) / 1e9
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if dt.size else default
