"""Image pixels -> the flat ground plane z = 0 of ``base_link`` (REP-103: x forward, y left, z up).

A camera is its pinhole model with distortion (sensor_msgs/CameraInfo's K and D) plus its pose in
base_link (the camera body frame, x forward; the optical frame is z forward, x right, y down).
Rays at or above the horizon, or hitting the ground beyond ``max_range``, are clipped to
``max_range`` along their horizontal direction, so a polygon keeps every vertex and its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fcn_perception.inference.mask_scale import WorkIndex
from fcn_perception.scene.drivable import orient

# optical (x right, y down, z forward) -> body (x forward, y left, z up)
_OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), the REP-103 fixed-axis convention of tf2 and URDF."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a (not necessarily normalised) quaternion, as TF transforms carry them."""
    q = np.array([x, y, z, w], np.float64)
    n = float(q @ q)
    if n < 1e-12:
        raise ValueError("zero quaternion")
    x, y, z, w = q * np.sqrt(2.0 / n)
    return np.array(
        [
            [1.0 - y * y - z * z, x * y - z * w, x * z + y * w],
            [x * y + z * w, 1.0 - x * x - z * z, y * z - x * w],
            [x * z - y * w, y * z + x * w, 1.0 - x * x - y * y],
        ]
    )


@dataclass
class CameraModel:
    k: np.ndarray  # 3x3 intrinsics
    d: np.ndarray  # distortion coefficients (plumb_bob: k1 k2 p1 p2 k3)
    width: int
    height: int
    translation: np.ndarray  # camera in base_link, m: always given (a guessed height puts the ground metres off)
    rotation: np.ndarray  # camera body -> base_link

    @classmethod
    def from_camera_info(
        cls, info, xyz: tuple[float, float, float], rpy: tuple[float, float, float] = (0.0, 0.0, 0.0), optical_rotation: np.ndarray | None = None
    ) -> CameraModel:
        """From a CameraInfo message (rclpy or rosbags); refuses degenerate calibrations with a reason.

        The pose is the camera body frame's (``xyz``, ``rpy`` parameters), or, from TF, the optical
        frame's rotation in base_link (``optical_rotation``), which is what the image's frame_id names.
        """
        k = np.asarray(info.k, np.float64).reshape(-1)
        d = np.asarray(info.d, np.float64).reshape(-1)
        if k.size != 9:
            raise ValueError(f"CameraInfo.k must have 9 values, got {k.size}")
        k = k.reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.all(np.isfinite(k)):
            raise ValueError(f"CameraInfo has no usable focal length (fx={k[0, 0]}, fy={k[1, 1]})")
        if int(info.width) <= 0 or int(info.height) <= 0:
            raise ValueError(f"CameraInfo size {info.width}x{info.height} is not usable")
        if d.size not in (0, 4, 5, 8, 12, 14) or not np.all(np.isfinite(d)):
            raise ValueError(f"CameraInfo.d has {d.size} coefficients; expected 0, 4, 5, 8, 12 or 14")
        rotation = rpy_matrix(*rpy) if optical_rotation is None else np.asarray(optical_rotation, np.float64) @ _OPTICAL_TO_BODY.T
        return cls(k, d, int(info.width), int(info.height), np.asarray(xyz, np.float64), rotation)

    @property
    def optical_to_base(self) -> np.ndarray:
        return self.rotation @ _OPTICAL_TO_BODY

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) undistorted points on the optical frame's z = 1 plane."""
        pts = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        return cv2.undistortPoints(pts, self.k, self.d if self.d.size else None).reshape(-1, 2)

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 3) unit-free ray directions in base_link, lens distortion removed."""
        norm = self.normalized(pixels)
        optical = np.column_stack([norm, np.ones(len(norm))])
        return optical @ self.optical_to_base.T

    def pixels_to_ground(self, pixels: np.ndarray, max_range: float) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) pixels -> (N, 2) ground points (x, y) in metres, and which of them were clipped."""
        d = self.rays(pixels)
        c = self.translation
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(d[:, 2] < -1e-9, -c[2] / d[:, 2], np.inf)
            ground = c[:2] + t[:, None] * d[:, :2]  # rays that miss the ground are replaced below
        dist = np.linalg.norm(ground - c[:2], axis=1)
        clipped = ~np.isfinite(t) | (dist > max_range)
        if clipped.any():
            horiz = d[clipped, :2]
            n = np.linalg.norm(horiz, axis=1, keepdims=True)
            horiz = np.where(n > 1e-12, horiz / np.maximum(n, 1e-12), np.array([1.0, 0.0]))
            ground[clipped] = c[:2] + horiz * max_range
        return ground, clipped

    def ground_to_pixels(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) ground points -> (N, 2) pixels (with distortion) and whether each is in front of the lens."""
        pts = np.column_stack([points, np.zeros(len(points))])
        r_base_to_opt = self.optical_to_base.T
        cam = (pts - self.translation) @ r_base_to_opt.T
        in_front = cam[:, 2] > 1e-6
        rvec, _ = cv2.Rodrigues(r_base_to_opt)
        tvec = -r_base_to_opt @ self.translation
        px, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), rvec, tvec, self.k, self.d if self.d.size else None)
        return px.reshape(-1, 2), in_front


@dataclass
class GridSpec:
    """Bird's-eye grid in base_link: x from x_min to x_max forward, y from -half_width to half_width."""

    resolution: float = 0.2
    x_min: float = 0.0
    x_max: float = 40.0
    half_width: float = 20.0

    @property
    def shape(self) -> tuple[int, int]:  # (rows along y, columns along x), OccupancyGrid row-major order
        return round(2 * self.half_width / self.resolution), round((self.x_max - self.x_min) / self.resolution)

    def cell_centres(self) -> np.ndarray:
        rows, cols = self.shape
        xs = self.x_min + (np.arange(cols) + 0.5) * self.resolution
        ys = -self.half_width + (np.arange(rows) + 0.5) * self.resolution
        gx, gy = np.meshgrid(xs, ys)
        return np.column_stack([gx.ravel(), gy.ravel()])


class GroundGrid:
    """Per camera: which image pixel each grid cell sees, computed once; per frame a single gather."""

    UNKNOWN, FREE, OCCUPIED = -1, 0, 100

    def __init__(self, camera: CameraModel, spec: GridSpec, max_range: float) -> None:
        self.camera, self.spec, self.max_range = camera, spec, max_range
        centres = spec.cell_centres()
        px, in_front = camera.ground_to_pixels(centres)
        dist = np.linalg.norm(centres - camera.translation[:2], axis=1)
        u, v = np.round(px[:, 0]), np.round(px[:, 1])
        seen = in_front & (dist <= max_range) & (u >= 0) & (v >= 0) & (u < camera.width) & (v < camera.height)
        self.seen = seen
        self.index = np.where(seen, v.clip(0, camera.height - 1) * camera.width + u.clip(0, camera.width - 1), 0).astype(np.int64)
        self.work_index = WorkIndex((camera.width, camera.height), self.index)  # the same for masks smaller than the camera

    def fill(self, drivable: np.ndarray) -> np.ndarray:
        """(H, W) 0/1 drivable mask -> int8 grid, OccupancyGrid data order. The mask is the camera's
        size, or a smaller one it is the nearest enlargement of (the network's): then each cell reads
        the pixel the enlargement would have put where it looks, the same grid."""
        flat = drivable.reshape(-1)[self.index_for(drivable.shape)]
        grid = np.where(self.seen, np.where(flat > 0, self.FREE, self.OCCUPIED), self.UNKNOWN).astype(np.int8)
        return grid.reshape(self.spec.shape)

    def index_for(self, shape: tuple[int, ...]) -> np.ndarray:
        """The cells' flat pixel indices into a mask of ``shape`` (h, w): the camera's or smaller."""
        h, w = shape[:2]
        if w > self.camera.width or h > self.camera.height:
            raise ValueError(f"mask {w}x{h} does not match CameraInfo {self.camera.width}x{self.camera.height}")
        return self.work_index(shape)


@dataclass
class GroundConfig:
    max_range: float = 50.0  # metres from the camera; farther points and the sky are clipped to it
    grid: GridSpec = field(default_factory=GridSpec)

    def __post_init__(self) -> None:
        g = self.grid
        if self.max_range <= 0 or g.resolution <= 0 or g.x_max <= g.x_min or g.half_width <= 0:
            raise ValueError(f"ground: need max_range > 0, resolution > 0, x_max > x_min, half_width > 0 (got {self})")
        rows, cols = g.shape
        if rows * cols > 4_000_000:
            raise ValueError(f"ground grid {cols}x{rows} cells is too large (at most 4,000,000): raise the resolution value")


@dataclass
class GroundRegion:
    outer: np.ndarray  # (N, 2) metres in base_link, counter-clockwise (positive area, x forward, y left)
    holes: list[np.ndarray]  # clockwise
    clipped: int = 0  # vertices moved onto the max_range circle


@dataclass
class GroundResult:
    regions: list[GroundRegion]  # same order as the image regions
    ego: GroundRegion | None
    grid: np.ndarray  # int8, GridSpec.shape, OccupancyGrid order (row = y, column = x)
    spec: GridSpec  # the grid's geometry, for its message
    rays: list[tuple[np.ndarray, list[np.ndarray]]]  # every ring on the optical z = 1 plane (markers)


class GroundProjector:
    """One camera's image regions and drivable mask onto base_link's ground plane, in metres.

    The grid lookup is computed once per calibration (a few ms); per frame the work is a gather
    over the grid cells plus one undistort-and-intersect over the polygon vertices.
    """

    def __init__(self, camera: CameraModel, cfg: GroundConfig | None = None) -> None:
        self.camera = camera
        self.cfg = cfg or GroundConfig()
        self.grid = GroundGrid(camera, self.cfg.grid, self.cfg.max_range)

    def check_size(self, width: int, height: int) -> None:
        if (width, height) != (self.camera.width, self.camera.height):
            raise ValueError(f"image {width}x{height} does not match its CameraInfo {self.camera.width}x{self.camera.height}")

    def project(self, regions, ego, binary: np.ndarray, size: tuple[int, int] | None = None) -> GroundResult:
        """``regions``/``ego`` from :func:`drivable.extract_regions` (camera pixels); ``binary`` the 0/1
        mask they came from, at the camera's ``size`` (w, h; default: the mask's) or smaller."""
        self.check_size(*(size or (binary.shape[1], binary.shape[0])))
        rings = [r.outer for r in regions] + [hole for r in regions for hole in r.holes]
        ground_regions, rays = [], []
        if rings:
            pixels = np.concatenate(rings)
            points, clipped = self.camera.pixels_to_ground(pixels, self.cfg.max_range)
            norm = self.camera.normalized(pixels)
            splits = np.cumsum([len(r) for r in rings])[:-1]
            pts, clip, nrm = np.split(points, splits), np.split(clipped, splits), np.split(norm, splits)
            i_hole = len(regions)
            for i, r in enumerate(regions):
                n = len(r.holes)
                holes = [orient(p, positive=False, start_lowest=False) for p in pts[i_hole : i_hole + n]]
                n_clipped = int(clip[i].sum() + sum(c.sum() for c in clip[i_hole : i_hole + n]))
                ground_regions.append(GroundRegion(orient(pts[i], positive=True, start_lowest=False), holes, n_clipped))
                rays.append((nrm[i], nrm[i_hole : i_hole + n]))
                i_hole += n
        ground_ego = next((g for g, r in zip(ground_regions, regions, strict=True) if r is ego), None)
        return GroundResult(ground_regions, ground_ego, self.grid.fill(binary), self.cfg.grid, rays)
