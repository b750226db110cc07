"""Lane-marking pixels onto the ground (no ROS): the points a planner fits lane lines to.

Each LaneMarking pixel of the mask is a ray from the camera; where it meets the ground plane z = 0
of base_frame within ``max_range`` it is a lane point. Pixels whose ray misses the ground (at or
above the horizon) or meets it farther out are dropped, not clipped: a lane point must be where the
paint is. A frame's lane pixels (a few thousand at 480x360, tens of thousands at 1080p) are thinned
to at most ``max_points`` by a regular stride over the pixels in raster order, which keeps them
spread over every marking.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fcn_perception.inference.mask_scale import MaskScale
from fcn_perception.scene.ground import GroundProjector

LANE_CLASS = "LaneMarking"


@dataclass
class LanePoints:
    ground: np.ndarray  # (N, 3) float32 x, y, z = 0 in base_frame, metres
    pixels: np.ndarray  # (N, 2) float32 the image pixel (u, v) each point came from


def lane_pixels(mask: np.ndarray, lane_id: int, max_points: int) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) of lane-marking pixels in raster order, at most ``max_points``, spread evenly."""
    found = cv2.findNonZero(cv2.compare(mask, lane_id, cv2.CMP_EQ))  # 10x numpy's nonzero at 1280x720
    if found is None:
        return np.zeros((0, 2), np.float64)
    uv = found.reshape(-1, 2)
    if len(uv) > max_points:
        uv = uv[np.linspace(0, len(uv) - 1, max_points).astype(np.int64)]
    return uv.astype(np.float64)


def lane_points(mask: np.ndarray, lane_id: int, projector: GroundProjector, max_points: int = 2000, size: tuple[int, int] | None = None) -> LanePoints:
    """Lane pixels of ``mask`` on the ground of ``projector``'s camera (empty arrays: none visible).
    ``size`` (w, h): the camera's, where ``mask`` is smaller (the network's); pixels are the camera's."""
    scale = MaskScale.of(mask, size)
    projector.check_size(*scale.camera)
    pixels = scale.to_camera(lane_pixels(mask, lane_id, max_points))
    if not len(pixels):
        return LanePoints(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32))
    ground, clipped = projector.camera.pixels_to_ground(pixels, projector.cfg.max_range)
    keep = ~clipped
    xyz = np.column_stack([ground[keep], np.zeros(int(keep.sum()))]).astype(np.float32)
    return LanePoints(xyz, pixels[keep].astype(np.float32))
