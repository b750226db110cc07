"""Line figures on labelled frames: the ego boundaries fitted to the model's paint against the same
fit to the label's paint, on the ground at a stated camera pose (no ROS).

Per frame and side (ego-left, ego-right): the label *has* a boundary when the fit to its paint finds
one that runs over the judged range (5-15 m ahead by default) between 0.5 and 3 m of the centre
line; the prediction *found* it when its boundary runs within ``match_m`` (median lateral distance
over the shared range) of the label's; the lateral errors at fixed distances are read off the
matched pairs. Precision = matched / published, recall = matched / labelled. Gaps between dashes are
not judged: both are cubics fitted across them.

The same boundaries are also judged *against the paint*, as the held-out drive's acceptance is: a
published boundary is on paint when, over the judged range, the median lateral distance from it
to the nearest labelled paint of each 0.5 m slice is at most ``match_m`` and it lies on its side
of the car; slices with no labelled paint within ``gap_m`` of it (the gaps of a dashed line) are
not judged. ``paint_precision`` = on paint / published; ``paint_recall`` = labelled sides whose
published boundary is on paint / labelled sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fcn_perception.scene.ground import GroundConfig
from fcn_perception.scene.lane_lines import EGO_LEFT, EGO_RIGHT, LaneLineConfig, ego_lane
from fcn_perception.scene.lanes import lane_points
from fcn_perception.scene.pipeline import CameraState

#: The CamVid camera, approximated (it publishes no calibration): a 55 degree horizontal field of
#: view at 480x360, scaled to the frame; the sample drive's CameraInfo is the same.
CAMVID_INTRINSICS = (460.0, 460.0, 240.0, 180.0, 480, 360)


@dataclass
class LaneEvalConfig:
    intrinsics: tuple[float, float, float, float, int, int] = CAMVID_INTRINSICS  # fx, fy, cx, cy at width x height
    pose: tuple[float, ...] = (0.0, 0.0, 1.5, 0.0, 0.0, 0.0)  # camera_pose: x y z roll pitch yaw in base_frame
    judged_m: tuple[float, float] = (5.0, 15.0)
    at_m: tuple[float, ...] = (5.0, 10.0, 15.0)
    match_m: float = 0.25
    offset_m: tuple[float, float] = (0.5, 3.0)  # a labelled boundary this far from the centre line counts
    max_range_m: float = 30.0
    gap_m: float = 1.0  # a slice whose nearest labelled paint is farther than this: a gap, not judged


@dataclass
class LaneScores:
    labelled: int = 0
    published: int = 0
    matched: int = 0
    errors_at: dict[float, list[float]] = field(default_factory=dict)
    errors: list[float] = field(default_factory=list)  # per matched pair: median over the judged range
    on_paint: int = 0  # published boundaries that run along the labelled paint
    recalled_on_paint: int = 0  # labelled sides whose published boundary runs along the labelled paint
    paint_errors: list[float] = field(default_factory=list)  # per boundary on paint: its median distance to it

    def summary(self) -> dict:
        med = {f"{x:g}m": (round(float(np.median(v)), 3) if v else None) for x, v in sorted(self.errors_at.items())}
        return {
            "labelled": self.labelled,
            "published": self.published,
            "matched": self.matched,
            "precision": round(self.matched / self.published, 4) if self.published else None,
            "recall": round(self.matched / self.labelled, 4) if self.labelled else None,
            "median_lateral_error_m": round(float(np.median(self.errors)), 3) if self.errors else None,
            "median_lateral_error_at": med,
            "paint_precision": round(self.on_paint / self.published, 4) if self.published else None,
            "paint_recall": round(self.recalled_on_paint / self.labelled, 4) if self.labelled else None,
            "paint_median_lateral_error_m": round(float(np.median(self.paint_errors)), 3) if self.paint_errors else None,
        }


class LaneJudge:
    """Scores frame after frame; one camera model for every frame of a split's size."""

    def __init__(self, cfg: LaneEvalConfig | None = None) -> None:
        self.cfg = cfg or LaneEvalConfig()
        self.scores = LaneScores(errors_at={x: [] for x in self.cfg.at_m})
        self._state: CameraState | None = None
        self._size: tuple[int, int] | None = None
        self.fit = LaneLineConfig(max_range_m=self.cfg.max_range_m)

    def _camera(self, width: int, height: int) -> CameraState:
        if self._size != (width, height):
            ground = GroundConfig(max_range=max(50.0, self.cfg.max_range_m))
            self._state = CameraState.stated(width, height, self.cfg.intrinsics, self.cfg.pose, ground)
            self._size = (width, height)
        return self._state

    def paint(self, mask: np.ndarray, lane_id: int) -> np.ndarray:
        """(N, 2) x, y on the ground of ``mask``'s lane paint."""
        state = self._camera(mask.shape[1], mask.shape[0])
        return lane_points(mask, lane_id, state.ground, 4000).ground[:, :2]

    def boundaries(self, mask: np.ndarray, lane_id: int, paint: np.ndarray | None = None) -> dict[int, object]:
        """The ego boundaries fitted to ``mask``'s lane paint (``paint``: its points, if known), by position."""
        xy = self.paint(mask, lane_id) if paint is None else paint
        lane = ego_lane(xy, self.fit) if len(xy) else None
        return {} if lane is None else {b.position: b for b in (lane.left, lane.right) if b is not None}

    def add(self, predicted: np.ndarray, label: np.ndarray, lane_id: int, published: dict | None = None) -> None:
        """One frame: the model's class mask and the label's (both at the label's size). ``published``:
        the boundaries by position as the node published them (default: fitted to ``predicted``)."""
        label_paint = self.paint(label, lane_id)
        pred = self.boundaries(predicted, lane_id) if published is None else published
        ref = self.boundaries(label, lane_id, label_paint)
        for position in (EGO_LEFT, EGO_RIGHT):
            r, p = ref.get(position), pred.get(position)
            labelled = r is not None and self._judged(r)
            judged = p is not None and self._judged(p)
            if judged:
                self.scores.published += 1
                along = self._along_paint(p, label_paint)
                if along is not None:
                    self.scores.on_paint += 1
                    self.scores.paint_errors.append(along)
                    self.scores.recalled_on_paint += labelled
            if labelled:
                self.scores.labelled += 1
                if judged:
                    self._match(p, r)

    def _along_paint(self, b, paint: np.ndarray) -> float | None:
        """The boundary's median lateral distance to the labelled paint it runs along, or None when it
        does not run along it (farther than ``match_m``, on the other side, or no paint to judge by)."""
        lo, hi = self.cfg.judged_m
        xs = np.arange(max(lo, b.x_range[0]), min(hi, b.x_range[1]) + 1e-9, 0.5)
        ys = b.y(xs)
        if not len(xs) or np.any(np.sign(ys) != b.side):
            return None
        dist = []
        for x, y in zip(xs, ys, strict=True):
            near = np.abs(paint[:, 0] - x) <= 0.25
            d = float(np.min(np.abs(paint[near, 1] - y))) if near.any() else np.inf
            if d <= self.cfg.gap_m:
                dist.append(d)
        if len(dist) < 3:
            return None
        err = float(np.median(dist))
        return err if err <= self.cfg.match_m else None

    def _match(self, p, r) -> None:
        """The fit-against-fit figures of one published boundary against the label's."""
        lo, hi = self.cfg.judged_m
        x = np.linspace(max(lo, r.x_range[0], p.x_range[0]), min(hi, r.x_range[1], p.x_range[1]), 21)
        if x[-1] - x[0] < 1.0:
            return
        err = float(np.median(np.abs(p.y(x) - r.y(x))))
        if err > self.cfg.match_m:
            return
        self.scores.matched += 1
        self.scores.errors.append(err)
        for at in self.cfg.at_m:
            if r.x_range[0] <= at <= r.x_range[1] and p.x_range[0] <= at <= p.x_range[1]:
                self.scores.errors_at[at].append(float(abs(p.y(np.array([at]))[0] - r.y(np.array([at]))[0])))

    def _judged(self, b) -> bool:
        """Runs over part of the judged range, on its side, at a lane boundary's offset."""
        lo, hi = self.cfg.judged_m
        a, z = max(lo, b.x_range[0]), min(hi, b.x_range[1])
        if z - a < 1.0:
            return False
        off = float(np.median(np.abs(b.y(np.linspace(a, z, 11)))))
        return self.cfg.offset_m[0] <= off <= self.cfg.offset_m[1]
