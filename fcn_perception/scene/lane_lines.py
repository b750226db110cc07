"""The ego lane's boundaries on the ground, fitted to the lane paint a planner can steer by.

Input: the frame's lane-paint points on the ground (``lanes.LanePoints``, base_frame, metres). Per
side (left: y > 0, right: y < 0), in slices along x, the paint nearest the car's centre line
between ``min_offset_m`` and ``max_offset_m`` is the ego lane's line there: paint nearer the centre
(arrows, text in the lane) is not a boundary, paint farther out belongs to the next lane. A cubic
(degree by the length seen) is fitted to the slices' line positions and refitted without the slices
off it by more than ``inlier_m`` (a stop line across the lane, hatching), so it runs through the
centre of its line and across the gaps of a dashed one. The boundary is sampled every ``step_m``
from its first to its last slice, within ``max_range_m``.

Beyond each ego boundary the next line out (2-4.5 m farther) is the adjacent lane's (position
-2 left, +2 right; the ego boundaries are -1 left, +1 right, as Apollo and DriveWorks number them).
Each boundary says what kind of line it is (solid, dashed: its slices have gaps; double: two
parallel strokes 0.1-0.4 m apart), its colour (white or yellow, from the image's pixels on it),
its confidence, its valid range and its track id.

Over time (:class:`LaneTracker`): a boundary keeps its track id while it is found frame after
frame, its course is smoothed (the lateral positions along it, not the cubic's coefficients: two
cubics fitted over different ranges blend into neither), and it is bridged without paint (a worn
dash, a passing car) for ``bridge_frames`` frames and at most ``bridge_s``, marked as bridged. With
the frames' stamps the smoothing is by time — ``smoothing`` is the previous frame's share at 30 Hz,
less for a slower camera, none after a gap — so a 10 Hz camera or a drive of sparse frames is not
dragged towards a line seen long ago. Where the car's pose in a fixed frame is known (TF odom ->
base_frame), the last frame's boundaries are first moved by the car's motion, so a lane change or a
turn does not smear one line into the next; without it, frame to frame as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

LEFT, RIGHT = 1, -1  # the sign of y on that side (base_frame: y left)
STEP_M = 0.5  # pose spacing of a published boundary and centre line, metres
#: position of a boundary: ego-left -1, ego-right +1, the adjacent lines -2 (left) and +2 (right)
EGO_LEFT, EGO_RIGHT, ADJACENT_LEFT, ADJACENT_RIGHT = -1, 1, -2, 2
KINDS = ("unknown", "solid", "dashed", "double")  # index = the code a message carries
COLOURS = ("unknown", "white", "yellow")


@dataclass
class LaneLineConfig:
    min_offset_m: float = 0.7  # paint nearer the centre line: the lane's own (arrows, text)
    max_offset_m: float = 3.0  # paint farther out: the next lane's
    max_range_m: float = 30.0  # lane_max_range
    slice_m: float = 1.0
    step_m: float = STEP_M  # pose spacing of the published boundary
    inlier_m: float = 0.25
    cluster_m: float = 0.35  # the nearest paint of a slice: within this of its nearest point
    min_slices: int = 4
    bridge_frames: int = 2
    bridge_s: float = 0.1  # nor longer than this since it was last seen (with stamps)
    smoothing: float = 0.5  # the previous frame's share of a boundary's course, at 30 Hz (with stamps: by time)
    adjacent_m: tuple[float, float] = (2.0, 4.5)  # the next line out: this much beyond the ego boundary
    solid_coverage: float = 0.8  # share of its range with paint above which a line is solid, below dashed


@dataclass
class Boundary:
    side: int  # LEFT (+1) or RIGHT (-1)
    coeffs: np.ndarray  # c0..c3: y = c0 + c1 x + c2 x^2 + c3 x^3, metres
    x_range: tuple[float, float]  # where it was seen (valid range of the cubic)
    confidence: float  # share of its slices that had paint on it, times the model's confidence on that paint
    track_id: int = 0
    bridged: int = 0  # frames since it was last seen (0: seen in this frame)
    position: int = 0  # EGO_LEFT, EGO_RIGHT, ADJACENT_LEFT, ADJACENT_RIGHT
    kind: str = "unknown"  # one of KINDS
    colour: str = "unknown"  # one of COLOURS
    unseen_s: float = 0.0  # time since it was last seen, where the frames' stamps tell (bridging)

    def y(self, x: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(x, self.coeffs)

    def points(self, step: float = STEP_M) -> np.ndarray:
        """(N, 2) x, y every ``step`` metres over the valid range, ordered by increasing x."""
        n = max(2, int(np.floor((self.x_range[1] - self.x_range[0]) / step)) + 1)
        x = np.linspace(self.x_range[0], self.x_range[0] + (n - 1) * step, n)
        return np.column_stack([x, self.y(x)])


@dataclass
class EgoLane:
    left: Boundary | None = None
    right: Boundary | None = None
    adjacent: list[Boundary] = field(default_factory=list)  # positions -2 and +2, where found

    @property
    def found(self) -> int:
        return (self.left is not None) + (self.right is not None)

    def boundaries(self) -> list[Boundary]:
        """Every boundary found, left to right (-2, -1, +1, +2)."""
        found = [b for b in (self.left, self.right, *self.adjacent) if b is not None]
        return sorted(found, key=lambda b: b.position)

    def center(self, step: float = STEP_M) -> np.ndarray | None:
        """The centre line over the range both boundaries share (None unless both are there)."""
        if self.left is None or self.right is None:
            return None
        x0, x1 = max(self.left.x_range[0], self.right.x_range[0]), min(self.left.x_range[1], self.right.x_range[1])
        if x1 - x0 < step:
            return None
        x = np.arange(x0, x1 + 1e-9, step)
        return np.column_stack([x, (self.left.y(x) + self.right.y(x)) / 2])


def _slice_lines(xy: np.ndarray, side: int, cfg: LaneLineConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slice centre x, line y, indices of the points it came from) per slice with paint on the line.

    Near the car the line is the paint nearest the centre line within [min_offset_m, max_offset_m];
    farther out each slice takes the paint nearest to where the slices before it put the line (a
    curve leaves the band; a stop line or hatching beside it does not pull it away)."""
    ahead = (xy[:, 0] >= 0) & (xy[:, 0] <= cfg.max_range_m) & (side * xy[:, 1] > 0)
    idx = np.flatnonzero(ahead)
    band = _nearest_line(xy[idx], side, cfg)
    if band is None:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    bins = np.floor(xy[idx, 0] / cfg.slice_m).astype(np.int64)
    order = np.argsort(bins, kind="stable")  # the slices' points as runs of one sorted pass
    idx, bins = idx[order], bins[order]
    off = side * xy[idx, 1]  # each point's offset from the centre line, in slice order
    cuts = np.flatnonzero(np.diff(bins)) + 1
    xs, offs, members = [], [], []
    for b, start, end in zip(bins[np.r_[0, cuts]].tolist(), np.r_[0, cuts].tolist(), np.r_[cuts, len(idx)].tolist(), strict=True):
        o = off[start:end]
        if len(xs) >= 2:  # where the line is heading: from the last two slices on it
            expect = offs[-1] + (offs[-1] - offs[-2]) / (xs[-1] - xs[-2]) * ((b + 0.5) * cfg.slice_m - xs[-1])
            keep = np.flatnonzero(np.abs(o - expect) <= 2 * cfg.cluster_m)
        else:  # until two slices are on it: the band of the nearest line, the paint nearest the car in it
            keep = np.flatnonzero((o >= band[0]) & (o <= band[1]))
            if len(keep):
                keep = keep[o[keep] <= o[keep].min() + cfg.cluster_m]
        if not len(keep):
            continue
        xs.append((b + 0.5) * cfg.slice_m)
        offs.append(_median(o[keep]))
        members.append(keep + start)
    if not xs:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    return np.array(xs), side * np.array(offs), idx[np.concatenate(members)]


def _median(v: np.ndarray) -> float:
    """np.median without its overhead (most of this module's time on a few dozen values)."""
    v = np.sort(v)
    n = len(v)
    return float(v[n // 2]) if n % 2 else float((v[n // 2 - 1] + v[n // 2]) / 2)


def _nearest_line(xy: np.ndarray, side: int, cfg: LaneLineConfig) -> tuple[float, float] | None:
    """The offset band (min, max, metres from the centre line) of the paint line nearest the car on
    this side: the paint's offsets within [min_offset_m, max_offset_m] split where no paint lies for
    ``cluster_m``; the nearest group that runs at least 3 m along the road is the line."""
    off = side * xy[:, 1]
    keep = (off >= cfg.min_offset_m) & (off <= cfg.max_offset_m)
    if keep.sum() < cfg.min_slices:
        return None
    order = np.argsort(off[keep])
    o, x = off[keep][order], xy[keep, 0][order]
    cuts = np.nonzero(np.diff(o) > cfg.cluster_m)[0] + 1
    for group in np.split(np.arange(len(o)), cuts):
        if len(group) >= cfg.min_slices and np.ptp(x[group]) >= 3.0:
            return float(o[group].min()) - 0.05, float(o[group].max()) + 0.05
    return None


def _fit(xs: np.ndarray, ys: np.ndarray, cfg: LaneLineConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """Coefficients c0..c3 and the inlier slices: a degree by the length seen, refitted without outliers."""
    keep = np.ones(len(xs), bool)
    coeffs = None
    for _ in range(3):
        if keep.sum() < cfg.min_slices:
            return None
        degree = min(_degree(xs[keep].max() - xs[keep].min()), int(keep.sum()) - 2)
        coeffs = np.polynomial.polynomial.polyfit(xs[keep], ys[keep], max(1, degree))
        residual = np.abs(np.polynomial.polynomial.polyval(xs, coeffs) - ys)
        new = residual <= cfg.inlier_m
        if np.array_equal(new, keep):
            break
        keep = new
    return np.pad(coeffs, (0, 4 - len(coeffs))), keep


def _degree(extent_m: float) -> int:
    """A line's polynomial degree by the length seen: straight under 8 m, a cubic from 16 m."""
    return 1 if extent_m < 8 else 2 if extent_m < 16 else 3


def fit_side(xy: np.ndarray, side: int, cfg: LaneLineConfig, sure: np.ndarray | None = None, rgb: np.ndarray | None = None) -> Boundary | None:
    """One side's ego boundary from the frame's paint points ``xy`` ((N, 2) in base_frame); ``sure``:
    the model's confidence (0..1) on each point's pixel; ``rgb``: each point's (N, 3) uint8 colour."""
    xs, ys, members = _slice_lines(xy, side, cfg)
    if len(xs) < cfg.min_slices:
        return None
    fitted = _fit(xs, ys, cfg)
    if fitted is None:
        return None
    coeffs, inliers = fitted
    x0, x1 = xs[inliers].min() - cfg.slice_m / 2, xs[inliers].max() + cfg.slice_m / 2
    covered = inliers.sum() / max(1, round((x1 - x0) / cfg.slice_m))
    model = float(np.mean(sure[members])) if sure is not None and len(members) else 1.0
    near = _on_line(xy, coeffs, (x0, x1), cfg)
    return Boundary(
        side,
        coeffs,
        (max(0.0, x0), min(cfg.max_range_m, x1)),
        round(float(min(1.0, covered) * model), 4),
        position=EGO_LEFT if side == LEFT else EGO_RIGHT,
        kind=line_kind(xy[near, 1] - np.polynomial.polynomial.polyval(xy[near, 0], coeffs), covered, cfg),
        colour=paint_colour(rgb[near]) if rgb is not None else "unknown",
    )


def _on_line(xy: np.ndarray, coeffs: np.ndarray, x_range: tuple[float, float], cfg: LaneLineConfig) -> np.ndarray:
    """Indices of the paint points within ``inlier_m`` of the fitted line over its range."""
    inside = (xy[:, 0] >= x_range[0]) & (xy[:, 0] <= x_range[1])
    return np.nonzero(inside & (np.abs(xy[:, 1] - np.polynomial.polynomial.polyval(xy[:, 0], coeffs)) <= cfg.inlier_m))[0]


def line_kind(residual: np.ndarray, covered: float, cfg: LaneLineConfig) -> str:
    """Double: the paint across the line falls in two strokes 0.1-0.4 m apart with an empty gap
    between (each with a fifth of the points at least); else solid or dashed by how much of its
    range has paint."""
    if len(residual) >= 20:
        r = np.sort(residual)
        gaps = np.diff(r)
        cut = int(np.argmax(gaps))
        a, b = r[: cut + 1], r[cut + 1 :]
        if gaps[cut] >= 0.06 and min(len(a), len(b)) >= 0.2 * len(r) and 0.1 <= np.median(b) - np.median(a) <= 0.4:
            return "double"
    return "solid" if covered >= cfg.solid_coverage else "dashed"


def paint_colour(rgb: np.ndarray) -> str:
    """Yellow where the paint's median pixel is a saturated yellow-orange (hue 15-40 of OpenCV's 180,
    saturation over 70), else white; unknown without pixels."""
    if not len(rgb):
        return "unknown"
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(rgb.reshape(-1, 1, 3), dtype=np.uint8), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    h, sat = np.median(hsv[:, 0]), np.median(hsv[:, 1])
    return "yellow" if 15 <= h <= 40 and sat > 70 else "white"


def _adjacent(xy: np.ndarray, ego: Boundary, cfg: LaneLineConfig, sure, rgb) -> Boundary | None:
    """The next line out beyond an ego boundary: the same fit, in the band ``adjacent_m`` beyond it."""
    x = np.clip(np.array([5.0, 10.0]), *ego.x_range)
    offset = float(np.min(np.abs(ego.y(x))))
    band = replace(cfg, min_offset_m=offset + cfg.adjacent_m[0], max_offset_m=offset + cfg.adjacent_m[1])
    found = fit_side(xy, ego.side, band, sure, rgb)
    if found is None:
        return None
    return replace(found, position=ADJACENT_LEFT if ego.side == LEFT else ADJACENT_RIGHT)


def ego_lane(xy: np.ndarray, cfg: LaneLineConfig, sure: np.ndarray | None = None, rgb: np.ndarray | None = None) -> EgoLane:
    """The ego lane's boundaries and, beyond each, the adjacent line where there is one."""
    left, right = fit_side(xy, LEFT, cfg, sure, rgb), fit_side(xy, RIGHT, cfg, sure, rgb)
    adjacent = [a for ego in (left, right) if ego is not None and (a := _adjacent(xy, ego, cfg, sure, rgb)) is not None]
    return EgoLane(left, right, adjacent)


#: One row per boundary, as ``<camera>/lanes/boundaries`` carries it (PointCloud2 fields of these names)
BOUNDARY_ROW = np.dtype(
    [
        ("position", "i1"),
        ("kind", "u1"),
        ("colour", "u1"),
        ("bridged", "u1"),
        ("track_id", "<u4"),
        ("confidence", "<f4"),
        ("x_min", "<f4"),
        ("x_max", "<f4"),
        ("c0", "<f4"),
        ("c1", "<f4"),
        ("c2", "<f4"),
        ("c3", "<f4"),
    ]
)


def boundary_table(lane: EgoLane) -> np.ndarray:
    """Every boundary of the lane as a row of :data:`BOUNDARY_ROW`, left to right."""
    rows = [(b.position, KINDS.index(b.kind), COLOURS.index(b.colour), b.bridged, b.track_id, b.confidence, *b.x_range, *b.coeffs) for b in lane.boundaries()]
    return np.array(rows, BOUNDARY_ROW)


@dataclass
class LaneTracker:
    """Per camera: track ids kept while a boundary is found frame after frame, coefficients smoothed,
    a lost boundary bridged for ``bridge_frames`` frames."""

    cfg: LaneLineConfig = field(default_factory=LaneLineConfig)
    last: dict[int, Boundary] = field(default_factory=dict)
    next_id: int = 1

    last_pose: np.ndarray | None = None  # the car's pose in the fixed frame at the last update
    last_stamp: float | None = None  # the last frame's stamp, s

    def update(self, lane: EgoLane, pose: np.ndarray | None = None, stamp_s: float | None = None) -> EgoLane:
        """Every boundary of this frame matched by position to the last frame's (the same line when
        its offset moved by 0.5 m at most), smoothed, or bridged when it is missing. ``pose``: the
        car's 4x4 pose in a fixed frame now (odom), to move the last frame's boundaries into this one;
        ``stamp_s``: the frame's stamp, for smoothing and bridging by time (None: by frames)."""
        if pose is not None and self.last_pose is not None:
            motion = np.linalg.solve(pose, self.last_pose)  # last base_frame -> this base_frame
            self.last = {p: moved for p, b in self.last.items() if (moved := _moved(b, motion, self.cfg)) is not None}
        self.last_pose = pose
        dt = None if stamp_s is None or self.last_stamp is None else stamp_s - self.last_stamp
        self.last_stamp = stamp_s
        if dt is not None and dt < 0:  # time went back (a replayed loop): nothing carries over
            self.last = {}
        found = {b.position: b for b in lane.boundaries()}
        out: dict[int, Boundary] = {}
        for position in sorted(set(found) | set(self.last)):
            new, prev = found.get(position), self.last.get(position)
            if new is not None and prev is not None and abs(new.coeffs[0] - prev.coeffs[0]) <= 0.5:  # the same line
                out[position] = replace(_blend(prev, new, self._share(dt), self.cfg), track_id=prev.track_id, bridged=0)
            elif new is not None:  # a new line (or a jump to another one): a new id
                out[position] = replace(new, track_id=self.next_id, bridged=0)
                self.next_id += 1
            elif prev is not None and self._bridges(prev, dt):
                out[position] = replace(prev, bridged=prev.bridged + 1, unseen_s=prev.unseen_s + (dt or 0.0))
        self.last = out
        adjacent = [b for p, b in out.items() if abs(p) == 2]
        return EgoLane(out.get(EGO_LEFT), out.get(EGO_RIGHT), adjacent)

    def _share(self, dt: float | None) -> float:
        """The previous course's share: ``smoothing`` per 30 Hz frame, by time where stamps say it."""
        if dt is None:
            return self.cfg.smoothing
        return 0.0 if dt > self.cfg.bridge_s else self.cfg.smoothing ** (dt * 30.0)

    def _bridges(self, prev: Boundary, dt: float | None) -> bool:
        if prev.bridged >= self.cfg.bridge_frames:
            return False
        return dt is None or prev.unseen_s + dt <= self.cfg.bridge_s


def _blend(prev: Boundary, new: Boundary, share: float, cfg: LaneLineConfig) -> Boundary:
    """``new`` with ``share`` of ``prev``'s lateral position where both were seen, refitted."""
    if share <= 0.0:
        return new
    pts = new.points(cfg.step_m)
    x = pts[:, 0]
    both = (x >= prev.x_range[0]) & (x <= prev.x_range[1])
    y = np.where(both, share * prev.y(x) + (1 - share) * pts[:, 1], pts[:, 1])
    coeffs = np.polynomial.polynomial.polyfit(x, y, max(1, min(_degree(x[-1] - x[0]), len(x) - 1)))
    return replace(new, coeffs=np.pad(coeffs, (0, 4 - len(coeffs))))


def _moved(b: Boundary, motion: np.ndarray, cfg: LaneLineConfig) -> Boundary | None:
    """The boundary seen from the car after ``motion`` (4x4, old base_frame -> new): its points moved
    on the ground and its cubic refitted; None once it is behind the car."""
    pts = b.points(cfg.step_m)
    xy = pts @ motion[:2, :2].T + motion[:2, 3]
    xy = xy[(xy[:, 0] >= 0) & (xy[:, 0] <= cfg.max_range_m)]
    if len(xy) < 2:
        return None
    coeffs = np.polynomial.polynomial.polyfit(xy[:, 0], xy[:, 1], 3 if len(xy) >= 6 else 1)
    return replace(b, coeffs=np.pad(coeffs, (0, 4 - len(coeffs))), x_range=(float(xy[:, 0].min()), float(xy[:, 0].max())))
