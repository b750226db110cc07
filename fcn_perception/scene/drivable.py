"""Drivable area from a class mask: cleaned regions with holes, simplified polygons, the ego region.

Vertex order (documented for planners): outer rings have positive shoelace area and holes
negative, computed on the published (x, y) values. In image pixels y points down, so an outer
ring with positive area runs clockwise on screen. Each ring starts at its lowest (largest y),
then leftmost vertex, so the same mask always gives the same vertex list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fcn_perception.inference.mask_scale import MaskScale

#: Painted lines are drivable: they must never cut holes or notches into the drivable polygon. A
#: model without a lane class (CamVid's 11) simply has Road.
DEFAULT_DRIVABLE = ("Road", "LaneMarking")


@dataclass
class DrivableConfig:
    classes: list[str] = field(default_factory=lambda: list(DEFAULT_DRIVABLE))
    min_area_px: int = 400  # regions smaller than this are dropped as noise
    hole_fill_px: int = 100  # holes smaller than this are filled (mislabelled specks, lane paint)
    epsilon_px: float = 2.0  # Douglas-Peucker tolerance
    max_vertices: int = 64  # per ring; the tolerance grows until a ring fits
    ego_point: tuple[float, float] = (0.5, 0.95)  # (x, y) as fractions of width/height: just ahead of the bumper
    max_lane_points: int = 2000  # lane-marking points per frame on the ground, at most
    lane_max_range: float = 30.0  # metres ahead within which the ego lane's boundaries are fitted

    def __post_init__(self) -> None:
        if self.max_vertices < 3:
            raise ValueError(f"max_vertices must be >= 3, got {self.max_vertices}")
        if self.epsilon_px < 0 or self.min_area_px < 0 or self.hole_fill_px < 0:
            raise ValueError("epsilon_px, min_area_px and hole_fill_px must be >= 0")
        if not all(0.0 <= v <= 1.0 for v in self.ego_point):
            raise ValueError(f"ego_point must be fractions in [0, 1], got {self.ego_point}")
        self.ego_point = tuple(self.ego_point)


@dataclass
class Region:
    outer: np.ndarray  # (N, 2) float32 pixel coordinates (x, y)
    holes: list[np.ndarray]
    area_px: float  # of the cleaned pixel region, holes excluded


def signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def orient(ring: np.ndarray, positive: bool, start_lowest: bool = True) -> np.ndarray:
    """The documented vertex order: outer rings with positive shoelace area, holes negative; image rings
    start at their lowest, then leftmost vertex (``start_lowest``; ground rings keep their image's start)."""
    if (signed_area(ring) > 0) != positive:
        ring = ring[::-1].copy()
    if not start_lowest:
        return ring
    start = np.lexsort((ring[:, 0], -ring[:, 1]))[0]  # largest y, then smallest x
    return np.roll(ring, -start, axis=0)


def _simplify(contour: np.ndarray, epsilon: float, max_vertices: int) -> np.ndarray:
    eps = max(epsilon, 0.5)
    ring = cv2.approxPolyDP(contour, eps, True)
    while len(ring) > max_vertices:
        eps *= 1.5
        ring = cv2.approxPolyDP(contour, eps, True)
    return ring.reshape(-1, 2).astype(np.float32)


def class_lut(class_ids: list[int]) -> np.ndarray:
    """A 256-entry table turning a class mask into a 0/1 drivable mask in one cv2.LUT pass."""
    lut = np.zeros(256, np.uint8)
    lut[list(class_ids)] = 1
    return lut


def drivable_mask(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Class ids -> 0/1 drivable pixels (the grid and the polygons both start from this)."""
    return cv2.LUT(mask, lut)


class MaskSmoother:
    """Per-camera exponential average of the drivable mask, against frame-to-frame flicker.

    ``weight`` is the share of the previous average (0 = off). It costs one multiply-add over the
    mask (about 1 ms at 1280x720 on one core, see BENCHMARKS.md) and lags the truth: a region needs
    about ``1 / (1 - weight)`` frames to appear or vanish, so keep it low on fast vehicles.
    """

    def __init__(self, weight: float) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"temporal smoothing weight must be in [0, 1), got {weight}")
        self.weight = weight
        self._avg: np.ndarray | None = None

    def __call__(self, binary: np.ndarray) -> np.ndarray:
        if self.weight == 0.0:
            return binary
        if self._avg is None or self._avg.shape != binary.shape:
            self._avg = binary.astype(np.float32)
        else:
            cv2.addWeighted(self._avg, self.weight, binary.astype(np.float32), 1.0 - self.weight, 0.0, dst=self._avg)
        return (self._avg >= 0.5).astype(np.uint8)


def extract_regions(binary: np.ndarray, cfg: DrivableConfig, scale: MaskScale | None = None) -> list[Region]:
    """All drivable regions of a 0/1 mask, largest first, each with its holes (cars, people on the road).

    Clean-up works on the contour hierarchy (small outlines dropped, small holes ignored), so its
    cost follows the contour length, not the pixel count: well under a millisecond at 720p.
    ``scale``: the camera the mask stands for, when it is smaller (the network's size): the
    thresholds stay the camera's pixels and the rings come out in them.
    """
    scale = scale or MaskScale.of(binary)
    sx, sy = scale.factors
    min_area, hole_fill = max(cfg.min_area_px, 1) / (sx * sy), max(cfg.hole_fill_px, 1) / (sx * sy)
    epsilon = cfg.epsilon_px / np.sqrt(sx * sy)
    contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy[0]
    regions = []
    for i, contour in enumerate(contours):
        if hierarchy[i][3] != -1:  # a hole: handled with its parent
            continue
        outer_area = cv2.contourArea(contour)
        if outer_area < min_area:
            continue
        holes, hole_area = [], 0.0
        child = hierarchy[i][2]
        while child != -1:
            area = cv2.contourArea(contours[child])
            if area >= hole_fill:
                ring = _simplify(contours[child], epsilon, cfg.max_vertices)
                if len(ring) >= 3:
                    holes.append(orient(scale.to_camera(ring).astype(np.float32), positive=False))
                    hole_area += area
            child = hierarchy[child][0]
        outer = _simplify(contour, epsilon, cfg.max_vertices)
        if len(outer) < 3:
            continue
        regions.append(Region(orient(scale.to_camera(outer).astype(np.float32), positive=True), holes, (outer_area - hole_area) * sx * sy))
    regions.sort(key=lambda r: -r.area_px)
    return regions


def ego_region(regions: list[Region], width: int, height: int, cfg: DrivableConfig) -> Region | None:
    """The region containing the ego point, else the nearest one; None means "no drivable area ahead"."""
    if not regions:
        return None
    px = (cfg.ego_point[0] * (width - 1), cfg.ego_point[1] * (height - 1))

    def distance(region: Region) -> float:
        d = cv2.pointPolygonTest(region.outer.reshape(-1, 1, 2), px, True)  # > 0 inside
        for hole in region.holes:
            if cv2.pointPolygonTest(hole.reshape(-1, 1, 2), px, False) > 0:
                return 1e-3  # inside the outline but on an obstacle: still the ego road
        return -d

    return min(regions, key=distance)
