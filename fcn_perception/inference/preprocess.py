"""Frame normalisation shared by training and inference: one definition, so they can never drift apart."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np


def inference_size(width: int, height: int, model_height: int, multiple: int = 32) -> tuple[int, int]:
    """(w, h) the network runs a ``width x height`` frame at: the model's input height and the frame's
    own aspect, width rounded to the network's coarsest stride. An FCN takes any size, so a 2:1 or
    16:9 camera need not be squashed into the 4:3 the model was trained on."""
    w = max(multiple, round(width * model_height / height / multiple) * multiple)
    return w, model_height


def check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got shape {rgb.shape} dtype {rgb.dtype}")


@lru_cache(maxsize=8)
def _blob_params(mean: tuple, std: tuple):
    """OpenCV's one-pass uint8 HWC -> float32 NCHW with ``(x - 255 mean) / (255 std)`` per channel."""
    p = cv2.dnn.Image2BlobParams()
    p.mean = (*(255.0 * np.asarray(mean, np.float64)), 0.0)
    p.scalefactor = (*(1.0 / (255.0 * np.asarray(std, np.float64))), 0.0)
    p.ddepth = cv2.CV_32F
    p.swapRB = False
    return p


def preprocess_rgb(rgb: np.ndarray, size: tuple[int, int], mean, std) -> np.ndarray:
    """HWC uint8 RGB at any size -> (1, 3, h, w) float32 at ``size`` (w, h), normalised as in training.

    The normalisation and the layout change are one pass of OpenCV's ``blobFromImageWithParams``:
    0.6-0.8 ms for a 640x360 frame where numpy's cast, multiply-add and transpose took 6 ms
    (BENCHMARKS.md, 1280x720 stages); the values agree to 5e-7.
    """
    return cv2.dnn.blobFromImageWithParams(np.ascontiguousarray(resize_rgb(rgb, size)), _blob_params(tuple(mean), tuple(std)))


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame at the network's ``size`` (w, h). Shrinking: area averaging by the largest whole
    factor that keeps it at least that size, then bilinear for what is left (under 2x, where
    bilinear reads every pixel). OpenCV's area averaging is exact and fast by whole factors but
    takes 2-9 ms a frame at any other ratio (640x480 -> 480x360, 960x540 -> 640x360); the masks
    are those of area averaging at any ratio within 0.1 mIoU (``tools/resize_study.py``,
    BENCHMARKS.md). Enlarging: bilinear."""
    check_rgb(rgb)
    w, h = size
    if rgb.shape[:2] == (h, w):
        return rgb
    factor = whole_factor(rgb.shape[0], rgb.shape[1], size)
    if factor >= 2:  # by fx/fy, so a size not divisible by the factor takes the fast path too
        rgb = cv2.resize(rgb, None, fx=1.0 / factor, fy=1.0 / factor, interpolation=cv2.INTER_AREA)
        if rgb.shape[:2] == (h, w):
            return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)


def whole_factor(height: int, width: int, size: tuple[int, int]) -> int:
    """The largest whole factor a ``height x width`` frame shrinks by and stays at least ``size``
    (w, h): the part of a resize done by area averaging, on the host and on a device alike."""
    return min(height // size[1], width // size[0])


def preprocess_tensor(rgb, size: tuple[int, int], mean, std):
    """:func:`preprocess_rgb` for a torch uint8 HxWx3 tensor on any device: on a GPU the frame is
    uploaded once as uint8 and resized/normalised there, as :func:`resize_rgb` resizes (area
    averaging by a whole factor, then half-pixel bilinear; masks agree >= 99.5 %, tested)."""
    import torch
    import torch.nn.functional as F

    w, h = size
    x = rgb.permute(2, 0, 1)[None].float()
    height, width = x.shape[2:]
    factor = whole_factor(height, width, size)
    if factor >= 2:
        x = F.interpolate(x, size=(round(height / factor), round(width / factor)), mode="area")
    if tuple(x.shape[2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return ((x * (1.0 / 255.0) - mean_t) / std_t).contiguous()
