"""One bird's-eye view from every camera: each camera's flat classes warped onto the ground and
fused into one grid around the car, weighted by how sure the model is and how near the cell is.

What a camera says about a cell comes from the pixel that sees the cell's centre on the flat ground
(the same lookup as the per-camera grid, computed once per calibration):
- flat classes (drivable ones, lane paint, and other flat ground such as pavement) are evidence for
  that cell, drivable or not;
- an obstacle (a car, a pole, a wall) is evidence of "not drivable" only where it meets the ground
  (its pixels just above flat ground): on flat-ground geometry its upper pixels would land far behind
  it, where the camera does not see;
- the sky, and anything else, is no evidence: the cell stays as it was (unknown if never seen).

Weights: the pixel's confidence (the top class's probability; 1 without a confidence output) times
``1 / (1 + (d / near_m)^2)`` for a cell ``d`` metres from the camera: a near view outweighs a far one.

The grid lives in a fixed frame when the car's motion is known (``odom`` from TF: each view is placed
by the car's pose at its image's stamp, so cameras are aligned in time and a static map holds still
while the car moves; evidence decays with ``decay_s`` and every cell keeps the age of its last view).
Without it the grid is the car's own frame, and it holds each camera's latest view (older views would
be misplaced by the unknown motion), looked up only when a snapshot reads it. A camera whose last
view is older than ``max_age_s`` takes no part, and :meth:`FusedGrid.stale` names it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from fcn_perception.inference.mask_scale import WorkIndex
from fcn_perception.scene.ground import CameraModel, GridSpec, GroundGrid

UNKNOWN, FREE, OCCUPIED = -1, 0, 100
#: an obstacle pixel counts as where it stands when flat ground is within this many rows below it
CONTACT_ROWS = 5


@dataclass
class FusionConfig:
    spec: GridSpec = field(default_factory=GridSpec)  # the car-relative window (the per-camera grid's geometry)
    decay_s: float = 0.5  # fixed frame: evidence halves every decay_s * ln 2 seconds
    max_age_s: float = 1.0  # a camera whose last view is older takes no part (and is reported stale)
    near_m: float = 10.0  # distance at which a view counts half
    max_range: float = 50.0  # metres from the camera, as the per-camera grid
    min_weight: float = 1e-4  # a cell with less evidence than this is unknown (faded out)


@dataclass
class ClassRoles:
    """Which class ids are drivable, lane paint, flat ground (not drivable) and no evidence (sky)."""

    drivable: set[int]
    lane: set[int] = field(default_factory=set)
    flat: set[int] = field(default_factory=set)  # flat but not drivable: pavement, grass
    ignore: set[int] = field(default_factory=set)  # no evidence at all: sky

    def tables(self, n: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Lookup tables id -> drivable, lane, flat (drivable, lane and flat ground), obstacle."""
        drv, lane, flat, obstacle = (np.zeros(n, bool) for _ in range(4))
        drv[list(self.drivable)] = True
        lane[list(self.lane)] = True
        flat[list(self.drivable | self.lane | self.flat)] = True
        obstacle[:] = True
        obstacle[list(self.drivable | self.lane | self.flat | self.ignore)] = False
        return drv, lane, flat, obstacle


#: class names that are flat ground but not drivable, and those that are no evidence at all
FLAT_CLASSES = ("Pavement", "Sidewalk", "Terrain", "Grass")
NO_EVIDENCE_CLASSES = ("Sky", "Void")
LANE_CLASS = "LaneMarking"


def roles_for(classes: list[str], drivable_classes: list[str]) -> ClassRoles:
    """The roles of a model's classes: drivable as the node's ``drivable_classes``, LaneMarking as
    paint, pavement-like classes as flat ground, the sky as no evidence, the rest obstacles."""
    ids = {c: i for i, c in enumerate(classes)}
    return ClassRoles(
        drivable={ids[c] for c in drivable_classes if c in ids},
        lane={ids[LANE_CLASS]} if LANE_CLASS in ids else set(),
        flat={ids[c] for c in FLAT_CLASSES if c in ids},
        ignore={ids[c] for c in NO_EVIDENCE_CLASSES if c in ids},
    )


@dataclass
class View:
    """One camera's frame on the car-relative window: per cell its evidence weight (0 = none), whether
    it is drivable and whether it is lane paint."""

    stamp_ns: int
    weight: np.ndarray  # float32, spec.shape
    drivable: np.ndarray  # bool
    lane: np.ndarray  # bool
    pose: np.ndarray | None = None  # 3x3 2D pose of base in the fixed frame at the stamp, or None


class CameraLookup:
    """Which pixel sees each window cell (the per-camera grid's own lookup, :class:`GroundGrid`), and
    the cell's distance weight: computed once per calibration. ``grid``: the camera's GroundGrid when
    it has the window's geometry already (the node's and replay's cameras do), else one is made."""

    def __init__(self, camera: CameraModel, cfg: FusionConfig, grid: GroundGrid | None = None) -> None:
        self.camera = camera
        if grid is None or grid.camera is not camera or grid.spec != cfg.spec or grid.max_range != cfg.max_range:
            grid = GroundGrid(camera, cfg.spec, cfg.max_range)
        self.seen = grid.seen
        #: only the cells the camera sees are read (a forward camera sees a third of the window)
        self.cells = np.flatnonzero(grid.seen)
        self.index = grid.index[self.cells]
        dist = np.linalg.norm(cfg.spec.cell_centres()[self.cells] - camera.translation[:2], axis=1)
        self.near = (1.0 / (1.0 + (dist / cfg.near_m) ** 2)).astype(np.float32)
        #: the pixels 1..CONTACT_ROWS below each sampled one (the last row stands for those past it)
        v, u = np.divmod(self.index, camera.width)
        self.below = np.stack([np.minimum(v + k, camera.height - 1) * camera.width + u for k in range(1, CONTACT_ROWS + 1)])
        #: the same for masks smaller than the camera
        self._index, self._below = (WorkIndex((camera.width, camera.height), i) for i in (self.index, self.below))

    def check(self, mask: np.ndarray, size: tuple[int, int] | None = None) -> None:
        """ValueError unless the frame (``size`` (w, h), else the mask's own) is this camera's."""
        w, h = size or mask.shape[::-1]
        if (w, h) != (self.camera.width, self.camera.height):
            raise ValueError(f"mask {w}x{h} does not match CameraInfo {self.camera.width}x{self.camera.height}")

    def view(self, mask: np.ndarray, confidence: np.ndarray | None, roles: tuple, stamp_ns: int, size: tuple[int, int] | None = None) -> View:
        """A frame's mask (and confidence, uint8 255 = 1.0) as evidence on the window; only the
        pixels the window's cells see are read (and, for obstacles, the few just below them).
        ``size`` (w, h): the camera's, where the mask and confidence are smaller (the network's)."""
        drv_t, lane_t, flat_t, obstacle_t = roles
        self.check(mask, size)
        index, below = self._index(mask.shape), self._below(mask.shape)
        flat_mask = mask.reshape(-1)
        ids = flat_mask[index]
        flat = flat_t[ids]
        contact = obstacle_t[ids] & flat_t[flat_mask[below]].any(0)  # an obstacle standing on flat ground
        evidence = flat | contact
        conf = np.float32(1.0) if confidence is None else confidence.reshape(-1)[index].astype(np.float32) / 255.0
        weight, drivable, lane = np.zeros(self.seen.size, np.float32), np.zeros(self.seen.size, bool), np.zeros(self.seen.size, bool)
        weight[self.cells] = self.near * evidence * conf
        drivable[self.cells] = drv_t[ids] & evidence
        lane[self.cells] = lane_t[ids] & evidence
        return View(stamp_ns, weight, drivable, lane)


@dataclass
class _Unread:
    """A frame in the car's frame, not yet looked up: there only each camera's latest view is read,
    at a snapshot, so a frame replaced before the next one is never looked up (two of three frames of
    a 30 Hz camera at the 10 Hz ``fusion_rate``; 0.5-0.6 ms each at 1280x720)."""

    lookup: CameraLookup
    frame: tuple  # the arguments of CameraLookup.view
    stamp_ns: int
    pose: None = None

    def view(self) -> View:
        return self.lookup.view(*self.frame)


def pose2d(matrix: np.ndarray) -> np.ndarray:
    """4x4 transform (base in the fixed frame) -> 3x3 2D rigid transform of the ground plane."""
    yaw = math.atan2(matrix[1, 0], matrix[0, 0])
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, matrix[0, 3]], [s, c, matrix[1, 3]], [0.0, 0.0, 1.0]])


@dataclass
class FusedView:
    """The fused grid at one time: per cell the drivable and lane-paint probabilities, seen or not,
    the age of its last view; its geometry (origin of cell (0, 0)'s corner, in ``frame``)."""

    stamp_ns: int
    drivable: np.ndarray  # float32 probability, NaN = unknown
    lane: np.ndarray  # float32 probability, NaN = unknown
    age_s: np.ndarray  # float32 seconds since the cell's last view, inf = never seen
    origin: tuple[float, float]  # x, y of the grid's corner
    resolution: float
    fixed_frame: bool  # True: the origin is in the fixed (odom) frame; False: the car's frame
    cameras: list[str] = field(default_factory=list)  # the cameras that took part

    def occupancy(self) -> np.ndarray:
        """int8 OccupancyGrid data: 0 drivable, 100 seen and not drivable, -1 unknown."""
        out = np.full(self.drivable.shape, UNKNOWN, np.int8)
        known = ~np.isnan(self.drivable)
        out[known] = np.where(self.drivable[known] >= 0.5, FREE, OCCUPIED)
        return out

    def cost(self, layer: np.ndarray) -> np.ndarray:
        """A probability layer as OccupancyGrid data 0..100, -1 unknown."""
        out = np.full(layer.shape, UNKNOWN, np.int8)
        known = ~np.isnan(layer)
        out[known] = np.round(layer[known] * 100).astype(np.int8)
        return out


class FusedGrid:
    """The fusion's state: each camera's lookup and latest view, and (with a fixed frame) the
    decaying memory of every view. Thread-safe: the node adds from its worker, publishes from a timer."""

    def __init__(self, cfg: FusionConfig, roles: ClassRoles, cameras: list[str] | None = None) -> None:
        self.cfg, self.roles, self.tables = cfg, roles, roles.tables()
        self.only = set(cameras or [])  # empty: every camera takes part
        self.lookups: dict[str, CameraLookup] = {}
        self.latest: dict[str, View | _Unread] = {}
        self.lock = threading.Lock()
        rows, cols = cfg.spec.shape
        #: fixed-frame memory: an axis-aligned square around the car, recentred in whole cells
        side = 2 * max(abs(cfg.spec.x_min), abs(cfg.spec.x_max), cfg.spec.half_width)
        self.n = round(side / cfg.spec.resolution)
        self.origin: np.ndarray | None = None  # corner of the memory window in the fixed frame (whole cells)
        self.w = np.zeros((self.n, self.n), np.float32)
        self.drv = np.zeros_like(self.w)
        self.lane = np.zeros_like(self.w)
        self.last = np.full((self.n, self.n), -1, np.int64)  # stamp of each cell's last view, -1 never
        self.clock = None  # the newest stamp seen (ns)
        self.shape = (rows, cols)

    def takes(self, camera: str) -> bool:
        return not self.only or camera in self.only

    def calibrate(self, camera: str, model: CameraModel | None, grid: GroundGrid | None = None) -> None:
        """A camera's calibration and pose in the car (None: it has none, it takes no part);
        ``grid``: its per-camera grid lookup, reused where it has the window's geometry."""
        with self.lock:
            if model is None:
                self.lookups.pop(camera, None)
                self.latest.pop(camera, None)
            elif camera not in self.lookups or self.lookups[camera].camera is not model:
                self.lookups[camera] = CameraLookup(model, self.cfg, grid)

    def add(
        self,
        camera: str,
        stamp_ns: int,
        mask: np.ndarray,
        confidence: np.ndarray | None,
        base_in_fixed: np.ndarray | None = None,
        size: tuple[int, int] | None = None,
    ) -> bool:
        """One camera frame; ``base_in_fixed``: the car's 4x4 pose in the fixed frame at the stamp
        (TF odom -> base_frame), None without; ``size`` (w, h): the camera's, where the mask is
        smaller. False when the camera takes no part or has no pose."""
        if not self.takes(camera):
            return False
        with self.lock:
            lookup = self.lookups.get(camera)
            if lookup is None:
                return False
            if base_in_fixed is None:  # the car's frame: looked up if a snapshot reads it (see _Unread)
                lookup.check(mask, size)
                self.latest[camera] = _Unread(lookup, (mask, confidence, self.tables, stamp_ns, size), stamp_ns)
                return True
            view = lookup.view(mask, confidence, self.tables, stamp_ns, size)
            view.pose = pose2d(base_in_fixed)
            self.latest[camera] = view
            self._remember(view)
            return True

    # -- fixed frame memory ------------------------------------------------------------------------
    def _recentre(self, pose: np.ndarray) -> None:
        res = self.cfg.spec.resolution
        want = np.floor((pose[:2, 2] - self.n * res / 2) / res) * res
        if self.origin is None:
            self.origin = want
            return
        shift = np.round((want - self.origin) / res).astype(int)  # whole cells: (dx, dy)
        if not shift.any():
            return
        for arr, empty in ((self.w, 0), (self.drv, 0), (self.lane, 0), (self.last, -1)):
            moved = np.full_like(arr, empty)
            dx, dy = shift
            src = arr[max(dy, 0) : self.n + min(dy, 0), max(dx, 0) : self.n + min(dx, 0)]
            moved[max(-dy, 0) : self.n + min(-dy, 0), max(-dx, 0) : self.n + min(-dx, 0)] = src
            arr[...] = moved
        self.origin = self.origin + shift * res

    def _warp(self, view: View, values: np.ndarray) -> np.ndarray:
        """A window layer (car frame at the view's stamp) into the memory window (fixed frame)."""
        spec, res = self.cfg.spec, self.cfg.spec.resolution
        # memory cell (i, j) centre in fixed -> car frame -> window cell: one affine map of indices
        to_car = np.linalg.inv(view.pose)
        m_fixed = np.array([[res, 0, self.origin[0] + res / 2], [0, res, self.origin[1] + res / 2], [0, 0, 1]])
        m_win = np.array([[1 / res, 0, -spec.x_min / res - 0.5], [0, 1 / res, spec.half_width / res - 0.5], [0, 0, 1]])
        affine = (m_win @ to_car @ m_fixed)[:2]
        return cv2.warpAffine(values, affine, (self.n, self.n), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)

    def _decay_to(self, stamp_ns: int) -> None:
        if self.clock is not None and stamp_ns > self.clock:
            f = math.exp(-(stamp_ns - self.clock) / 1e9 / self.cfg.decay_s)
            self.w *= f
            self.drv *= f
            self.lane *= f
        self.clock = stamp_ns if self.clock is None else max(self.clock, stamp_ns)

    def _remember(self, view: View) -> None:
        self._recentre(view.pose)
        self._decay_to(view.stamp_ns)
        age = math.exp(-max(0, self.clock - view.stamp_ns) / 1e9 / self.cfg.decay_s)  # a late frame counts less
        weight = view.weight * age
        layers = np.stack([weight, weight * view.drivable, weight * view.lane], axis=-1).astype(np.float32).reshape(*self.shape, 3)
        w, drv, lane = np.moveaxis(self._warp(view, layers), -1, 0)  # the three layers in one warp
        self.w += w
        self.drv += drv
        self.lane += lane
        self.last[w > 0] = np.maximum(self.last[w > 0], view.stamp_ns)

    # -- reading -------------------------------------------------------------------------------------
    def _fresh(self, now_ns: int) -> dict[str, View]:
        """The cameras taking part at ``now_ns``: their latest view is at most ``max_age_s`` old (lock held)."""
        return {c: v for c, v in self.latest.items() if (now_ns - v.stamp_ns) / 1e9 <= self.cfg.max_age_s}

    def _in_fixed_frame(self, fresh: dict[str, View]) -> bool:
        return bool(fresh) and all(v.pose is not None for v in fresh.values()) and self.origin is not None

    def caught_up(self, now_ns: int) -> int | None:
        """The oldest latest stamp among the cameras taking part at ``now_ns``: every one of them has a
        view at least this new. None before any view."""
        with self.lock:
            stamps = [v.stamp_ns for v in self._fresh(now_ns).values()]
        return min(stamps) if stamps else None

    def taking_part(self, now_ns: int) -> tuple[list[str], list[str], bool]:
        """(the cameras taking part at ``now_ns``, the stale ones, whether the grid is in the fixed frame)."""
        with self.lock:
            fresh = self._fresh(now_ns)
            return sorted(fresh), sorted(set(self.latest) - set(fresh)), self._in_fixed_frame(fresh)

    def stale(self, now_ns: int) -> list[str]:
        """Cameras whose last view is older than ``max_age_s`` at ``now_ns`` (they take no part)."""
        return self.taking_part(now_ns)[1]

    def snapshot(self, now_ns: int) -> FusedView | None:
        """The fused grid at ``now_ns``: the fixed-frame memory where the car's motion is known, else
        every fresh camera's latest view in the car's frame. None before any view."""
        with self.lock:
            fresh = self._fresh(now_ns)
            if not fresh:
                return None
            if self._in_fixed_frame(fresh):
                return self._memory(now_ns, sorted(fresh))
            return self._latest(now_ns, fresh)

    def _latest(self, now_ns: int, fresh: dict[str, View]) -> FusedView:
        w = np.zeros(self.shape, np.float32)
        drv, lane = np.zeros_like(w), np.zeros_like(w)
        last = np.full(self.shape, -1, np.int64)
        for camera, v in fresh.items():
            if isinstance(v, _Unread):
                v = self.latest[camera] = v.view()
            weight = v.weight.reshape(self.shape) * math.exp(-max(0, now_ns - v.stamp_ns) / 1e9 / self.cfg.decay_s)
            w += weight
            drv += weight * v.drivable.reshape(self.shape)
            lane += weight * v.lane.reshape(self.shape)
            last[weight > 0] = np.maximum(last[weight > 0], v.stamp_ns)
        spec = self.cfg.spec
        return self._view(now_ns, w, drv, lane, last, (spec.x_min, -spec.half_width), False, sorted(fresh))

    def _memory(self, now_ns: int, cameras: list[str]) -> FusedView:
        f = math.exp(-max(0, now_ns - self.clock) / 1e9 / self.cfg.decay_s) if self.clock is not None else 1.0
        return self._view(now_ns, self.w * f, self.drv * f, self.lane * f, self.last, tuple(self.origin), True, cameras)

    def _view(self, now_ns, w, drv, lane, last, origin, fixed, cameras) -> FusedView:
        known = w >= self.cfg.min_weight
        with np.errstate(invalid="ignore", divide="ignore"):
            p_drv = np.where(known, drv / w, np.nan).astype(np.float32)
            p_lane = np.where(known, lane / w, np.nan).astype(np.float32)
        age = np.where(last >= 0, (now_ns - last) / 1e9, np.inf).astype(np.float32)
        return FusedView(now_ns, p_drv, p_lane, age, (float(origin[0]), float(origin[1])), self.cfg.spec.resolution, fixed, cameras)


def ego_polygon(view: FusedView, base_in_fixed: np.ndarray | None = None, ahead_m: float = 15.0) -> np.ndarray | None:
    """The fused grid's drivable region ahead of the car — the one holding the first drivable cell on
    the car's axis within ``ahead_m`` — as its outer contour in the grid's frame, counter-clockwise;
    None when there is none. ``base_in_fixed``: the car's 4x4 pose, for a grid in the fixed frame."""
    free = (view.occupancy() == FREE).astype(np.uint8)
    to_grid = pose2d(base_in_fixed) if view.fixed_frame and base_in_fixed is not None else np.eye(3)
    start = None
    for x in np.arange(0.0, ahead_m, view.resolution / 2):
        p = to_grid @ np.array([x, 0.0, 1.0])
        col, row = int((p[0] - view.origin[0]) / view.resolution), int((p[1] - view.origin[1]) / view.resolution)
        if 0 <= row < free.shape[0] and 0 <= col < free.shape[1] and free[row, col]:
            start = (row, col)
            break
    if start is None:
        return None
    _, labels = cv2.connectedComponents(free, connectivity=4)
    region = (labels == labels[start]).astype(np.uint8)
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    xy = np.column_stack([view.origin[0] + (outline[:, 0] + 0.5) * view.resolution, view.origin[1] + (outline[:, 1] + 0.5) * view.resolution])
    area = 0.5 * np.sum(xy[:, 0] * np.roll(xy[:, 1], -1) - np.roll(xy[:, 0], -1) * xy[:, 1])
    return xy if area >= 0 else xy[::-1]
