"""The node's parameters in one table: defaults, descriptions, ranges, validation (no ROS import).

The node declares ROS parameters from :data:`PARAMS`; replay reads the same YAML through
:func:`load_params_yaml`, so live and offline runs are configured identically.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from .drivable import DrivableConfig
from .image_codec import DEFAULT_MAX_PIXELS
from .segmenter import SegmenterConfig

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


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "image_topics",
        ["/camera_front/image_raw/compressed"],
        "Camera image topics, one per camera. A topic ending in /compressed is subscribed as sensor_msgs/CompressedImage, "
        "any other as sensor_msgs/Image. Outputs go under the camera namespace (the topic without image_raw, image, .../compressed).",
    ),
    ParamSpec("model", "", "Model file (.pt checkpoint or .onnx). Empty: the model shipped in the package."),
    ParamSpec(
        "backend", "auto", "Inference backend. auto: torch on CUDA when a GPU is present, else ONNX Runtime on CPU.", choices=("auto", "onnxruntime", "torch")
    ),
    ParamSpec("threads", 0, "CPU threads for inference; 0 = all cores.", min=0, max=256),
    ParamSpec("input_width", 0, "Width frames are resized to before inference; 0 = the model's training size.", min=0, max=8192),
    ParamSpec("input_height", 0, "Height frames are resized to before inference; 0 = the model's training size.", min=0, max=8192),
    ParamSpec(
        "qos_reliability", "best_effort", "Reliability of the image subscriptions (best_effort = sensor-data profile).", choices=("best_effort", "reliable")
    ),
    ParamSpec("qos_depth", 5, "History depth of the image subscriptions.", min=1, max=100),
    ParamSpec("publish_overlay", True, "Publish the colour overlay (only computed while someone subscribes).", read_only=False),
    ParamSpec("overlay_alpha", 0.5, "Opacity of class colours in the overlay.", read_only=False, min=0.0, max=1.0),
    ParamSpec("drivable_classes", ["Road"], "Classes that count as drivable area.", read_only=False),
    ParamSpec("polygon_epsilon_px", 2.0, "Douglas-Peucker tolerance of drivable polygons, pixels.", read_only=False, min=0.0, max=100.0),
    ParamSpec("polygon_min_area_px", 400, "Drivable regions smaller than this (pixels) are ignored.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_hole_fill_px", 100, "Holes smaller than this (pixels) are filled.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_max_vertices", 64, "Most vertices per polygon ring; the tolerance grows until a ring fits.", read_only=False, min=3, max=10_000),
    ParamSpec(
        "ego_point_x", 0.5, "Ego point, fraction of image width: the drivable region containing it is the ego region.", read_only=False, min=0.0, max=1.0
    ),
    ParamSpec("ego_point_y", 0.95, "Ego point, fraction of image height (1 = bottom row).", read_only=False, min=0.0, max=1.0),
    ParamSpec("max_pixels", DEFAULT_MAX_PIXELS, "Frames with more pixels are refused and counted as bad input.", min=1, max=100_000_000),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", min=0.1, max=60.0),
)
SPECS = {p.name: p for p in PARAMS}


@dataclass
class NodeConfig:
    image_topics: list[str]
    model: str
    backend: str
    threads: int
    input_width: int
    input_height: int
    qos_reliability: str
    qos_depth: int
    publish_overlay: bool
    overlay_alpha: float
    drivable_classes: list[str]
    polygon_epsilon_px: float
    polygon_min_area_px: int
    polygon_hole_fill_px: int
    polygon_max_vertices: int
    ego_point_x: float
    ego_point_y: float
    max_pixels: int
    diagnostics_period: float

    @classmethod
    def from_dict(cls, values: dict) -> NodeConfig:
        """Defaults overlaid with ``values``; every value checked against its spec (ValueError names it)."""
        unknown = set(values) - set(SPECS)
        if unknown:
            raise ValueError(f"unknown parameters: {sorted(unknown)}")
        merged = {p.name: values.get(p.name, p.default) for p in PARAMS}
        for name, value in merged.items():
            check_value(name, value)
        cfg = cls(**merged)
        cfg.drivable()  # cross-field checks
        if not cfg.image_topics:
            raise ValueError("image_topics: at least one camera topic is needed")
        if bool(cfg.input_width) != bool(cfg.input_height):
            raise ValueError("input_width and input_height must both be set or both be 0")
        return cfg

    def segmenter(self) -> SegmenterConfig:
        return SegmenterConfig(model=self.model, backend=self.backend, input_width=self.input_width, input_height=self.input_height, threads=self.threads)

    def drivable(self) -> DrivableConfig:
        return DrivableConfig(
            classes=list(self.drivable_classes),
            min_area_px=self.polygon_min_area_px,
            hole_fill_px=self.polygon_hole_fill_px,
            epsilon_px=self.polygon_epsilon_px,
            max_vertices=self.polygon_max_vertices,
            ego_point=(self.ego_point_x, self.ego_point_y),
        )


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
    else:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) and v for v in value)
    if not ok:
        raise ValueError(f"{name}: expected {type(default).__name__}, got {value!r}")
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


FIELD_NAMES = tuple(f.name for f in fields(NodeConfig))
assert tuple(SPECS) == FIELD_NAMES, "NodeConfig fields and PARAMS must list the same parameters in the same order"
