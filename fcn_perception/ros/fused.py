"""The fused bird's-eye view in the node and in replay: every camera's served frame goes into one
:class:`~fcn_perception.scene.fusion.FusedGrid`, and the fused outputs (``outputs.FUSED_OUTPUTS``) are
made from it at ``fusion_rate``. The grid is in ``odom_frame`` where the car's motion is known
(TF odom_frame -> base_frame at each image's stamp), else in ``base_frame``."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from fcn_perception.params.node_config import NodeConfig
from fcn_perception.ros import outputs
from fcn_perception.scene.camera import CameraWorkflow
from fcn_perception.scene.fusion import FusedGrid, FusedView, ego_polygon, roles_for
from fcn_perception.scene.image_codec import stamp_ns
from fcn_perception.scene.pipeline import FrameResult

#: (odom_frame, base_frame header) -> the car's 4x4 pose in odom_frame at the header's stamp, or None
OdomSource = Callable[[str, object], np.ndarray | None]


class Fusion:
    """One fused grid fed by every camera, and the messages of its outputs at a fixed rate of the
    images' own time (so replay writes what the node would publish)."""

    def __init__(self, cfg: NodeConfig, classes: list[str], odom: OdomSource) -> None:
        self.cfg, self.odom = cfg, odom
        self.grid = FusedGrid(cfg.fusion(), roles_for(classes, cfg.drivable_classes), cfg.fusion_cameras)
        self.newest = 0  # ns: the newest image stamp fed
        self.last_made = None  # ns: the stamp of the last fused messages made
        self.pose: np.ndarray | None = None  # the car's latest pose in odom, for the polygon
        self.made = 0
        self.fed_at: float | None = None  # time.monotonic() of the last frame taken

    def feed(self, cam: CameraWorkflow, header, result: FrameResult) -> bool:
        """A served frame of one camera (its calibration and the car's pose at its stamp with it)."""
        if not self.grid.takes(cam.topic):
            return False
        ground = cam.state.ground
        self.grid.calibrate(cam.topic, ground.camera if ground is not None else None, ground.grid if ground is not None else None)
        stamp = stamp_ns(header)
        pose = self.odom(self.cfg.odom_frame, SimpleNamespace(stamp=header.stamp, frame_id=self.cfg.base_frame)) if self.cfg.odom_frame else None
        taken = self.grid.add(cam.topic, stamp, result.seg.work_mask, result.seg.work_confidence, pose, result.size)
        if taken:
            self.fed_at = time.monotonic()
            self.newest = max(self.newest, stamp)
            self.pose = pose if pose is not None else self.pose
        return taken

    def silent(self) -> bool:
        """No camera has sent a frame for ``fusion_max_age`` seconds of wall time: the node then sends no
        fused grid (the last one would keep its old stamp forever)."""
        return self.fed_at is None or time.monotonic() - self.fed_at > self.cfg.fusion_max_age

    def due(self) -> bool:
        """At ``fusion_rate`` of the images' time, once every camera taking part has caught up to within
        half a period of the newest frame (synchronised cameras: after the last of them, so a grid never
        pairs one camera's frame with another's previous one). Replay calls this after each frame."""
        ready = self.grid.caught_up(self.newest) if self.newest else None
        if ready is None or (self.newest - ready) / 1e9 > 0.5 / self.cfg.fusion_rate:  # a camera yet to send this frame
            return False
        return self.last_made is None or (self.newest - self.last_made) / 1e9 >= 1.0 / self.cfg.fusion_rate

    def snapshot(self) -> tuple[FusedView, np.ndarray | None] | None:
        """The grid at the newest stamp and the car's pose for its polygon (None before any camera has
        a view): the only part that reads the fusion's state. The node takes it under its lock and
        makes the messages (:meth:`build`, the longer part) outside it, so no frame waits on them."""
        view = self.grid.snapshot(self.newest) if self.newest else None
        if view is None:
            return None
        self.last_made, self.made = self.newest, self.made + 1
        return view, (self.pose if view.fixed_frame else None)

    def build(self, snapshot: tuple[FusedView, np.ndarray | None], new: Callable[..., object], keys: list[str]) -> dict[str, object]:
        """The fused outputs of ``keys`` from a :meth:`snapshot`."""
        view, pose = snapshot
        frame_id = self.cfg.odom_frame if view.fixed_frame else self.cfg.base_frame
        sec, nsec = divmod(view.stamp_ns, 1_000_000_000)
        header = new("std_msgs/msg/Header", stamp=new("builtin_interfaces/msg/Time", sec=int(sec), nanosec=int(nsec)), frame_id=frame_id)
        return outputs.build_fused(keys, new, header, view, ego_polygon(view, pose))

    def messages(self, new: Callable[..., object], keys: list[str]) -> dict[str, object]:
        """The fused outputs of ``keys`` at the newest stamp (empty before any camera has a view)."""
        snapshot = self.snapshot()
        return {} if snapshot is None else self.build(snapshot, new, keys)

    def status(self) -> tuple[bool, dict[str, str]]:
        """(worth a WARN: a camera stale or none taking part, diagnostics values)."""
        taking, stale, fixed = self.grid.taking_part(self.newest) if self.newest else ([], [], False)
        values = {
            "fusion_cameras": ", ".join(taking) or "none",
            "fusion_stale_cameras": ", ".join(stale) or "none",
            "fusion_frame": (self.cfg.odom_frame if fixed else self.cfg.base_frame) if taking else "n/a",
            "fusion_grids_made": str(self.made),
        }
        return bool(stale) or not taking, values
