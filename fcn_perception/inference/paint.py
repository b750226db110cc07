"""Lane paint in the image: thin strokes brighter than the road around them (no ROS, no network).

One definition for the two places that use it: the pseudo-labels of training (training/pseudo_lanes.py)
and the sharpening of the model's LaneMarking at inference (:func:`sharpen_lanes`).
"""

from __future__ import annotations

import cv2
import numpy as np


def tophat_kernel(height: int, kernel_at_360: int = 9) -> int:
    """The top-hat's (odd) square size for a frame ``height`` px high: 9 px at 360, scaled."""
    return max(3, round(kernel_at_360 * height / 360) | 1)


def white_tophat(rgb: np.ndarray, kernel_at_360: int = 9) -> np.ndarray:
    """Brightness above its local opening (uint8): thin bright strokes stand out of the asphalt; the
    kernel scales with the frame's height (9 px at 360)."""
    k = tophat_kernel(rgb.shape[0], kernel_at_360)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))


def grown(mask: np.ndarray, px: int) -> np.ndarray:
    """A bool mask dilated by ``px`` pixels (a square)."""
    if px <= 0:
        return mask.astype(bool)
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)) > 0


def sharpen_lanes(mask: np.ndarray, rgb: np.ndarray, road_id: int, lane_id: int, grow_px: int = 2, above: int = 10) -> np.ndarray:
    """The model's LaneMarking made as thin as the paint: within ``grow_px`` of the model's paint and
    on its road, a pixel is LaneMarking where the image shows a bright stroke (top-hat > ``above``),
    else Road. The model says where paint is (stride-8 scores draw it 2-4x too wide), the image says
    which pixels. ``mask`` and ``rgb`` at the same (network) size; other classes are never touched."""
    lane = mask == lane_id
    if not lane.any():
        return mask
    near = grown(lane, grow_px) & (lane | (mask == road_id))
    paint = near & (white_tophat(rgb) > above)
    out = mask.copy()
    out[near] = road_id
    out[paint] = lane_id
    return out


def sharpen_lanes_torch(mask, x, mean, std, road_id: int, lane_id: int, grow_px: int = 2, above: int = 10):
    """:func:`sharpen_lanes` on a device: ``mask`` (H, W) class ids and ``x`` the normalised (1, 3, H, W)
    network input it came from, both left where they are (a GPU backend's path). The morphology is
    max-pooling (a rectangle's erosion is a max-pool of the negation), the brightness OpenCV's grey."""
    import torch
    import torch.nn.functional as F

    lane = mask == lane_id
    if not bool(lane.any()):
        return mask
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    rgb = ((x * s + m) * 255.0).round().clamp(0, 255)
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    gray = (rgb * w).sum(1, keepdim=True).round()
    k = tophat_kernel(x.shape[2])
    opened = F.max_pool2d(-F.max_pool2d(-gray, k, 1, k // 2), k, 1, k // 2)
    tophat = (gray - opened)[0, 0]
    d = 2 * grow_px + 1
    near = F.max_pool2d(lane[None, None].to(x.dtype), d, 1, grow_px)[0, 0] > 0
    near &= lane | (mask == road_id)
    out = mask.clone()
    out[near] = road_id
    out[near & (tophat > above)] = lane_id
    return out
