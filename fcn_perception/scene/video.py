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


class StreamingVideo:
    """An overlay video written as frames arrive, so memory does not grow with the drive: the first
    ``RATE_FRAMES`` frames wait (as JPEG, a tenth of their pixels) until their stamps give the camera's
    rate (:func:`recorded_fps`), then every frame goes straight to the file."""

    RATE_FRAMES = 10

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._waiting: list[tuple[np.ndarray, int]] = []
        self._out: VideoOut | None = None

    def add(self, bgr: np.ndarray, stamp_ns: int) -> None:
        if self._out is not None:
            self._out.write(bgr)
            return
        self._waiting.append((cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], stamp_ns))
        if len(self._waiting) >= self.RATE_FRAMES:
            self._start()

    def _start(self) -> None:
        self._out = VideoOut(self.path, recorded_fps([stamp for _, stamp in self._waiting]))
        for jpeg, _ in self._waiting:
            self._out.write(cv2.imdecode(jpeg, cv2.IMREAD_COLOR))
        self._waiting = []

    @property
    def written(self) -> int:
        """Frames in the file so far (those still waiting for the rate are not)."""
        return 0 if self._out is None else self._out.frames

    def close(self) -> VideoOut:
        """The finished video (a drive shorter than ``RATE_FRAMES`` frames is written now)."""
        if self._out is None:
            self._start()
        self._out.close()
        return self._out


def recorded_fps(stamps_ns: list[int], default: float = 10.0) -> float:
    """The camera's rate from its stamps (median interval), so a video plays at the recorded pace."""
    if len(stamps_ns) < 2:
        return default
    dt = np.diff(np.sort(np.asarray(stamps_ns, np.int64))) / 1e9
    dt = dt[dt > 0]
    return float(1.0 / np.median(dt)) if dt.size else default
