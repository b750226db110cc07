"""Frames from image files: one reader and one notion of 'an image file' for eval, calibration and segment."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fcn_perception.inference.preprocess import inference_size, preprocess_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class FrameReadError(ValueError):
    """An image file that cannot be read; the message names it."""


def read_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 frame; OpenCV's silent ``None`` for unreadable files becomes a clear error."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FrameReadError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def image_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files of a folder (and its subfolders with ``recursive``), sorted."""
    paths = Path(folder).rglob("*") if recursive else Path(folder).iterdir()
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def calibration_batch(folder: str | Path, size: tuple[int, int], mean, std, count: int, keep_aspect: bool = False) -> list[np.ndarray]:
    """``count`` frames spread evenly over a folder tree, preprocessed exactly as the pipeline does:
    INT8 scales calibrated on anything else would not match what the network sees. ``keep_aspect``
    (a graph with free height/width): each frame at ``size``'s height and its own aspect, as served."""
    files = image_files(folder, recursive=True)
    if not files:
        raise FrameReadError(f"no images (png, jpg) in {folder}")
    step = max(1, len(files) // count)
    batch = []
    for f in files[::step][:count]:
        rgb = read_rgb(f)
        batch.append(preprocess_rgb(rgb, inference_size(rgb.shape[1], rgb.shape[0], size[1]) if keep_aspect else size, mean, std))
    return batch
