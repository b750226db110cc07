"""The node's parameters as one validated, typed object, and the configs of the parts they drive.

:class:`NodeConfig`'s fields are made from the parameter table (``params/table.py``), each with its
declared type and default, so the two cannot differ; replay, corpus, compare and bench read the same
YAML through :func:`load_params_yaml`, so live and offline runs are configured identically.
"""

from __future__ import annotations

import copy
from dataclasses import field, fields, make_dataclass
from pathlib import Path

import yaml

from fcn_perception.inference.segmenter import SegmenterConfig
from fcn_perception.params.table import NODE_NAME, PARAMS, PY_TYPES, SPECS, check_known, check_value
from fcn_perception.scene.drivable import DrivableConfig
from fcn_perception.scene.fusion import FusionConfig
from fcn_perception.scene.ground import GridSpec, GroundConfig

Pose = tuple[tuple[float, float, float], tuple[float, float, float]]


class _NodeConfig:
    """Every node parameter as a typed field (the table's), validated; built by :meth:`from_dict`."""

    @classmethod
    def from_dict(cls, values: dict) -> NodeConfig:
        """Defaults overlaid with ``values``; every value checked against its spec (ValueError names it)."""
        check_known(values)
        merged = {p.name: values.get(p.name, p.default) for p in PARAMS}
        for p in PARAMS:  # an array declared by type only (ROS) and not set
            if p.type.endswith("[]") and merged[p.name] is None:
                merged[p.name] = []
        for name, value in merged.items():
            check_value(name, value)
        cfg = cls(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in merged.items()})
        cfg._check_together()
        return cfg

    def _check_together(self) -> None:
        self.drivable()
        if not self.image_topics:
            raise ValueError("image_topics: at least one camera topic is needed")
        if self.input_width and not self.input_height:
            raise ValueError("input_width needs input_height (input_height alone keeps each frame's aspect)")
        n_cams = len(dict.fromkeys(self.image_topics))
        if len(self.camera_pose) not in (0, 6, 6 * n_cams):
            raise ValueError(f"camera_pose: expected 6 values (all cameras) or 6 per camera ({6 * n_cams}), got {len(self.camera_pose)}")
        unknown = [t for t in self.fusion_cameras if t not in self.image_topics]
        if unknown:
            raise ValueError(f"fusion_cameras: {unknown} not in image_topics {self.image_topics}")
        if not self.base_frame or self.base_frame.startswith("/"):
            raise ValueError(f"base_frame: {self.base_frame!r} is not a valid frame id (non-empty, no leading slash)")
        self.ground()  # the grid's extent

    def values(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def pose(self, camera_index: int) -> Pose | None:
        """(xyz, rpy) of the camera_index-th image topic from the camera_pose parameter; None when the
        user set none (ground outputs then need TF: a guessed pose would put polygons metres off)."""
        if not self.camera_pose:
            return None
        p = self.camera_pose[6 * camera_index : 6 * camera_index + 6] if len(self.camera_pose) > 6 else self.camera_pose
        return (p[0], p[1], p[2]), (p[3], p[4], p[5])

    def ground(self) -> GroundConfig:
        spec = GridSpec(self.grid_resolution, self.grid_x_min, self.grid_x_max, self.grid_half_width)
        return GroundConfig(max_range=self.ground_max_range, grid=spec)

    def segmenter(self) -> SegmenterConfig:
        return SegmenterConfig(
            model=self.model,
            backend=self.backend,
            input_width=self.input_width,
            input_height=self.input_height,
            threads=self.threads,
            engine=self.trusted_engine,
            cache_dir=self.cache_dir,
            precision=self.precision,
            sharpen_lanes=self.sharpen_lanes,
            streams=self.inference_streams or min(len(dict.fromkeys(self.image_topics)), self.worker_threads),
            coarse_reuse_ms=self.coarse_reuse_ms,
        )

    def fusion(self) -> FusionConfig:
        """The fused grid: the per-camera grid's geometry (so the two compare cell by cell)."""
        return FusionConfig(spec=self.ground().grid, decay_s=self.fusion_decay, max_age_s=self.fusion_max_age, max_range=self.ground_max_range)

    def drivable(self) -> DrivableConfig:
        return DrivableConfig(
            classes=list(self.drivable_classes),
            min_area_px=self.polygon_min_area_px,
            hole_fill_px=self.polygon_hole_fill_px,
            epsilon_px=self.polygon_epsilon_px,
            max_vertices=self.polygon_max_vertices,
            ego_point=(self.ego_point_x, self.ego_point_y),
            max_lane_points=self.lane_max_points,
            lane_max_range=self.lane_max_range,
        )


NodeConfig = make_dataclass(
    "NodeConfig",
    [(p.name, PY_TYPES[p.type], field(default_factory=lambda d=p.default: copy.deepcopy(d))) for p in PARAMS],
    bases=(_NodeConfig,),
)
NodeConfig.__module__, NodeConfig.__doc__ = __name__, _NodeConfig.__doc__


def runtime_update(cfg: NodeConfig, changes: dict) -> NodeConfig:
    """The config after ``ros2 param set``: read-only and invalid values are refused (ValueError with
    the reason, the old config kept), the rest checked together as at start."""
    for name, value in changes.items():
        if SPECS[name].read_only:
            raise ValueError(f"{name} is read-only (restart the node to change it)")
        check_value(name, value)
    if not changes:
        return cfg
    return NodeConfig.from_dict({**cfg.values(), **changes})


def load_params_yaml(path: str | Path, node_name: str = NODE_NAME) -> dict:
    """The ``ros__parameters`` of a ROS 2 params file (``/**`` wildcard and the node's own entry)."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    params: dict = {}
    for key, block in raw.items():
        if key in ("/**", node_name, f"/{node_name}") or key.endswith(f"/{node_name}"):
            params.update((block or {}).get("ros__parameters", {}))
    if not params and raw:
        raise ValueError(f"{path}: no ros__parameters for '/**' or '{node_name}'")
    return params


def node_config(params: str | Path | None = None, overrides: dict | None = None) -> NodeConfig:
    """The car's parameters (a params YAML, ``--params``) with ``overrides`` on top, validated: what
    replay, corpus and compare run with."""
    values = load_params_yaml(params) if params else {}
    values.update(overrides or {})
    return NodeConfig.from_dict(values)
