"""The node's parameters in one table: defaults, descriptions, ranges, validation (no ROS import).

The node declares ROS parameters from :data:`PARAMS`; replay reads the same YAML through
:func:`load_params_yaml`, so live and offline runs are configured identically.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fcn_perception.inference.backends import BACKENDS
from fcn_perception.inference.segmenter import SegmenterConfig
from fcn_perception.scene.drivable import DEFAULT_DRIVABLE, DrivableConfig
from fcn_perception.scene.ground import GridSpec, GroundConfig
from fcn_perception.scene.image_codec import DEFAULT_MAX_PIXELS

NODE_NAME = "fcn_perception_node"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    read_only: bool = True  # needs a restart to change
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    type: str = ""  # set where the default cannot say it (an empty list): "double[]"


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "image_topics",
        ["/camera_front/image_raw/compressed"],
        "Camera image topics, one per camera. A topic ending in /compressed is subscribed as sensor_msgs/CompressedImage, "
        "any other as sensor_msgs/Image. Outputs go under the camera namespace (the topic without image_raw, image, .../compressed).",
    ),
    ParamSpec("model", "", "Model file (.pt checkpoint or .onnx). Empty: the model shipped in the package."),
    ParamSpec(
        "backend",
        "auto",
        "Inference backend. auto: TensorRT when it is installed and a GPU is present, else torch on CUDA; on the CPU OpenVINO "
        "where installed, else ONNX Runtime.",
        choices=BACKENDS,
    ),
    ParamSpec(
        "trusted_engine",
        "",
        "A TensorRT engine file built elsewhere. Engines are otherwise loaded only from the node's own cache (manifest with "
        "hash and build key); deserializing an engine runs code from it, so one from elsewhere is used only when named here.",
    ),
    ParamSpec(
        "cache_dir",
        "",
        "Where derived files (ONNX exports, TensorRT engines, OpenVINO blobs) are written; nothing is written elsewhere. "
        "Empty: $FCN_PERCEPTION_CACHE, else $XDG_CACHE_HOME/fcn_perception.",
    ),
    ParamSpec(
        "on_backend_failure",
        "fallback_cpu",
        "After backend_failure_limit inference errors in a row: fallback_cpu = switch to ONNX Runtime on the CPU "
        "(a fresh session if it already is), retry = keep trying the same backend. Diagnostics go ERROR either way.",
        read_only=False,
        choices=("fallback_cpu", "retry"),
    ),
    ParamSpec(
        "stall_timeout",
        2.0,
        "Seconds one frame may spend in the pipeline before diagnostics go ERROR (a hung driver call cannot be interrupted, only reported).",
        read_only=False,
        min=0.1,
        max=600.0,
    ),
    ParamSpec("backend_failure_limit", 5, "Inference errors in a row that count as a failed backend.", read_only=False, min=1, max=10_000),
    ParamSpec(
        "precision",
        "auto",
        "Numeric precision: auto = TensorRT fp16, on the CPU the shipped INT8 model; fp32; fp16 (GPU backends); bf16 "
        "(OpenVINO on a CPU with bf16); int8 (TensorRT: a symmetric Q/DQ graph, on 10 also a calibrated engine; CPU: the shipped INT8 model).",
        choices=("auto", "fp32", "fp16", "bf16", "int8"),
    ),
    ParamSpec("threads", 0, "CPU threads for inference; 0 = all cores.", min=0, max=256),
    ParamSpec("input_width", 0, "Width frames are resized to before inference; 0 = the model's input height at the frame's own aspect.", min=0, max=8192),
    ParamSpec("input_height", 0, "Height frames are resized to before inference; 0 = the model's input height (360).", min=0, max=8192),
    ParamSpec(
        "qos_reliability", "best_effort", "Reliability of the image subscriptions (best_effort = sensor-data profile).", choices=("best_effort", "reliable")
    ),
    ParamSpec("qos_depth", 5, "History depth of the image subscriptions.", min=1, max=100),
    ParamSpec("publish_overlay", True, "Publish the colour overlay (only computed while someone subscribes).", read_only=False),
    ParamSpec("overlay_alpha", 0.5, "Opacity of class colours in the overlay.", read_only=False, min=0.0, max=1.0),
    ParamSpec(
        "drivable_classes",
        list(DEFAULT_DRIVABLE),
        "Classes that count as drivable area (LaneMarking: painted lines never cut the polygon; skipped for a model without it).",
        read_only=False,
    ),
    ParamSpec("polygon_epsilon_px", 2.0, "Douglas-Peucker tolerance of drivable polygons, pixels.", read_only=False, min=0.0, max=100.0),
    ParamSpec("polygon_min_area_px", 400, "Drivable regions smaller than this (pixels) are ignored.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_hole_fill_px", 100, "Holes smaller than this (pixels) are filled.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_max_vertices", 64, "Most vertices per polygon ring; the tolerance grows until a ring fits.", read_only=False, min=3, max=10_000),
    ParamSpec(
        "lane_max_points",
        2000,
        "Most lane-marking points per frame on lane_markings/points (spread evenly over the marking pixels).",
        read_only=False,
        min=1,
        max=1_000_000,
    ),
    ParamSpec(
        "ego_point_x", 0.5, "Ego point, fraction of image width: the drivable region containing it is the ego region.", read_only=False, min=0.0, max=1.0
    ),
    ParamSpec("ego_point_y", 0.95, "Ego point, fraction of image height (1 = bottom row).", read_only=False, min=0.0, max=1.0),
    ParamSpec(
        "temporal_smoothing",
        0.0,
        "Share of the previous frames in the per-camera average of the drivable mask (0 = off). Damps flicker, "
        "but a change needs about 1/(1-value) frames to show.",
        read_only=False,
        min=0.0,
        max=0.95,
    ),
    ParamSpec(
        "base_frame",
        "base_footprint",
        "Frame of the ground outputs; the ground is its z = 0 plane (REP-105 base_footprint: base_link projected on the ground; x forward, y left, z up).",
    ),
    ParamSpec(
        "camera_pose",
        [],
        "Camera body pose in base_frame: x, y, z (m), roll, pitch, yaw (rad, pitch > 0 looks down); 6 values for all cameras "
        "or 6 per image topic, in order. Used when TF has no transform for the image's frame_id. Not set (default) and no "
        "TF: no ground outputs (a guessed pose would put them metres off).",
        type="double[]",
    ),
    ParamSpec("use_tf", True, "Look the camera pose up in TF (base_frame -> image frame_id, at the image's stamp) where tf2_ros is installed."),
    ParamSpec("tf_timeout", 0.05, "Seconds to wait for TF to reach an image's stamp before serving it without ground outputs.", min=0.0, max=5.0),
    ParamSpec("ground_max_range", 50.0, "Ground points farther than this (m), and the sky, are clipped to this range along their ray.", min=1.0, max=1000.0),
    ParamSpec("grid_resolution", 0.2, "Bird's-eye grid cell size, metres.", min=0.01, max=10.0),
    ParamSpec("grid_x_min", 0.0, "Grid's near edge along x, metres (x from grid_x_min to grid_x_max).", min=-500.0, max=500.0),
    ParamSpec("grid_x_max", 40.0, "Grid's far edge ahead of base_frame's origin, metres.", min=-500.0, max=1000.0),
    ParamSpec("grid_half_width", 20.0, "Grid extent to each side of base_frame's origin, metres.", min=0.1, max=500.0),
    ParamSpec("max_pixels", DEFAULT_MAX_PIXELS, "Frames with more pixels are refused and counted as bad input.", min=1, max=100_000_000),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", min=0.1, max=60.0),
    ParamSpec(
        "autostart",
        True,
        "Configure and activate at start (as a plain node). false: wait unconfigured for lifecycle transitions from a system manager.",
    ),
)
SPECS = {p.name: p for p in PARAMS}


@dataclass
class NodeConfig:
    """Every node parameter as a typed field, validated; built by :meth:`from_dict`.

    Written out so a type checker and a reader see the types; :data:`PARAMS` stays the one table of
    names, defaults, ranges and descriptions (``test_node_config_fields_are_the_parameter_table``
    fails when the two differ).
    """

    image_topics: list[str] = field(default_factory=lambda: ["/camera_front/image_raw/compressed"])
    model: str = ""
    backend: str = "auto"
    trusted_engine: str = ""
    cache_dir: str = ""
    on_backend_failure: str = "fallback_cpu"
    stall_timeout: float = 2.0
    backend_failure_limit: int = 5
    precision: str = "auto"
    threads: int = 0
    input_width: int = 0
    input_height: int = 0
    qos_reliability: str = "best_effort"
    qos_depth: int = 5
    publish_overlay: bool = True
    overlay_alpha: float = 0.5
    drivable_classes: list[str] = field(default_factory=lambda: list(DEFAULT_DRIVABLE))
    polygon_epsilon_px: float = 2.0
    polygon_min_area_px: int = 400
    polygon_hole_fill_px: int = 100
    polygon_max_vertices: int = 64
    lane_max_points: int = 2000
    ego_point_x: float = 0.5
    ego_point_y: float = 0.95
    temporal_smoothing: float = 0.0
    base_frame: str = "base_footprint"
    camera_pose: list[float] = field(default_factory=list)
    use_tf: bool = True
    tf_timeout: float = 0.05
    ground_max_range: float = 50.0
    grid_resolution: float = 0.2
    grid_x_min: float = 0.0
    grid_x_max: float = 40.0
    grid_half_width: float = 20.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    diagnostics_period: float = 1.0
    autostart: bool = True

    @classmethod
    def from_dict(cls, values: dict) -> NodeConfig:
        """Defaults overlaid with ``values``; every value checked against its spec (ValueError names it)."""
        check_known(values)
        merged = {p.name: values.get(p.name, p.default) for p in PARAMS}
        if merged["camera_pose"] is None:  # declared without a default: not set
            merged["camera_pose"] = []
        for name, value in merged.items():
            check_value(name, value)
        cfg = cls(**{k: (list(v) if isinstance(v, tuple) else v) for k, v in merged.items()})
        cfg.drivable()  # cross-field checks
        if not cfg.image_topics:
            raise ValueError("image_topics: at least one camera topic is needed")
        if bool(cfg.input_width) != bool(cfg.input_height):
            raise ValueError("input_width and input_height must both be set or both be 0")
        n_cams = len(dict.fromkeys(cfg.image_topics))
        if len(cfg.camera_pose) not in (0, 6, 6 * n_cams):
            raise ValueError(f"camera_pose: expected 6 values (all cameras) or 6 per camera ({6 * n_cams}), got {len(cfg.camera_pose)}")
        if not cfg.base_frame or cfg.base_frame.startswith("/"):
            raise ValueError(f"base_frame: {cfg.base_frame!r} is not a valid frame id (non-empty, no leading slash)")
        cfg.ground()  # cross-field checks of the grid
        return cfg

    def pose(self, camera_index: int) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
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
        )

    def drivable(self) -> DrivableConfig:
        return DrivableConfig(
            classes=list(self.drivable_classes),
            min_area_px=self.polygon_min_area_px,
            hole_fill_px=self.polygon_hole_fill_px,
            epsilon_px=self.polygon_epsilon_px,
            max_vertices=self.polygon_max_vertices,
            ego_point=(self.ego_point_x, self.ego_point_y),
            max_lane_points=self.lane_max_points,
        )


def runtime_update(cfg: NodeConfig, changes: dict) -> NodeConfig:
    """The config after ``ros2 param set``: read-only and invalid values are refused (ValueError with
    the reason, the old config kept), the rest checked together as at start."""
    for name, value in changes.items():
        if SPECS[name].read_only:
            raise ValueError(f"{name} is read-only (restart the node to change it)")
        check_value(name, value)
    if not changes:
        return cfg
    return NodeConfig.from_dict({**{f: getattr(cfg, f) for f in SPECS}, **changes})


def check_known(values: dict) -> None:
    """Unknown names are refused, with the closest known one: a typo must not silently keep a default."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, SPECS, n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ValueError(f"unknown parameter{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}")


def check_value(name: str, value: object) -> None:
    spec = SPECS[name]
    default = spec.default
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif spec.type == "double[]" or (default and isinstance(default[0], float)):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    else:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
    if not ok:
        raise ValueError(f"{name}: expected {spec.type or type(default).__name__}, got {value!r}")
    if spec.type == "double[]" and value is None:
        return
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ValueError(f"{name}: {value} outside [{spec.min}, {spec.max}]")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{name}: {value!r} is not one of {list(spec.choices)}")


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


def python_type(spec: ParamSpec) -> str:
    """The field type a parameter's spec declares (for the dataclass check and the README)."""
    d = spec.default
    if spec.type == "double[]":
        return "list[float]"
    if isinstance(d, (bool, int, float, str)):
        return type(d).__name__
    return "list[str]"
