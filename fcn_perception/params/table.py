"""Every parameter of the node, declared once: name, type, default, range or choices, runtime or
restart, description. No ROS import: the node, replay, corpus, compare and bench all read it.

Derived from this table, nowhere written again: the typed :class:`~fcn_perception.params.node_config.NodeConfig`,
validation (:func:`check_value`), the node's ROS declarations and descriptors (``ros/parameters.py``),
the check of ``config/fcn_perception.yaml`` (``test/test_packaging.py``) and the README's table
(``tools/readme_tables.py``).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from fcn_perception.inference.backends import BACKENDS, PRECISIONS
from fcn_perception.scene.drivable import DEFAULT_DRIVABLE
from fcn_perception.scene.image_codec import DEFAULT_MAX_PIXELS

NODE_NAME = "fcn_perception_node"
#: a parameter's declared type -> the Python type of its NodeConfig field
PY_TYPES = {"bool": bool, "int": int, "double": float, "string": str, "string[]": list[str], "double[]": list[float]}


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: a parameter's declared type -> whether a value is one
_IS = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "double": _number,
    "string": lambda v: isinstance(v, str),
    "string[]": lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) and s for s in v),
    "double[]": lambda v: isinstance(v, (list, tuple)) and all(_number(x) for x in v),
}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str  # one of PY_TYPES: bool, int, double, string, string[], double[]
    default: object  # [] for double[]: declared by type only, "not set"
    description: str
    read_only: bool = True  # needs a restart to change
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in PY_TYPES:
            raise TypeError(f"parameter {self.name}: type {self.type!r} is not one of {list(PY_TYPES)}")
        if not (self.type == "double[]" and self.default == []) and not _IS[self.type](self.default):
            raise TypeError(f"parameter {self.name}: default {self.default!r} is not a {self.type}")


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "image_topics",
        "string[]",
        ["/camera_front/image_raw/compressed"],
        "Camera image topics, one per camera. A topic ending in /compressed is subscribed as sensor_msgs/CompressedImage, "
        "any other as sensor_msgs/Image. Outputs go under the camera namespace (the topic without image_raw, image, .../compressed).",
    ),
    ParamSpec("model", "string", "", "Model file (.pt checkpoint or .onnx). Empty: the model shipped in the package."),
    ParamSpec(
        "backend",
        "string",
        "auto",
        "Inference backend. auto: TensorRT when it is installed and a GPU is present, else torch on CUDA; on the CPU OpenVINO "
        "where installed, else ONNX Runtime.",
        choices=BACKENDS,
    ),
    ParamSpec(
        "trusted_engine",
        "string",
        "",
        "A TensorRT engine file built elsewhere. Engines are otherwise loaded only from the node's own cache (manifest with "
        "hash and build key); deserializing an engine runs code from it, so one from elsewhere is used only when named here.",
    ),
    ParamSpec(
        "cache_dir",
        "string",
        "",
        "Where derived files (ONNX exports, TensorRT engines, OpenVINO blobs) are written; nothing is written elsewhere. "
        "Empty: $FCN_PERCEPTION_CACHE, else $XDG_CACHE_HOME/fcn_perception.",
    ),
    ParamSpec(
        "on_backend_failure",
        "string",
        "fallback_cpu",
        "After backend_failure_limit inference errors in a row: fallback_cpu = switch to ONNX Runtime on the CPU "
        "(a fresh session if it already is), retry = keep trying the same backend. Diagnostics go ERROR either way.",
        read_only=False,
        choices=("fallback_cpu", "retry"),
    ),
    ParamSpec(
        "stall_timeout",
        "double",
        2.0,
        "Seconds one frame may spend in the pipeline before diagnostics go ERROR (a hung driver call cannot be interrupted, only reported).",
        read_only=False,
        min=0.1,
        max=600.0,
    ),
    ParamSpec("backend_failure_limit", "int", 5, "Inference errors in a row that count as a failed backend.", read_only=False, min=1, max=10_000),
    ParamSpec(
        "precision",
        "string",
        "auto",
        "Numeric precision: auto = TensorRT fp16; on OpenVINO the fastest of INT8, fp32, bf16, measured once on this CPU from the first start's 300th frame "
        "(INT8 until then), kept in the cache and said in the log and diagnostics; ONNX Runtime the shipped INT8; fp32; fp16 (GPU backends); bf16 "
        "(OpenVINO on a CPU with bf16); int8 (TensorRT: a symmetric Q/DQ graph, on 10 also a calibrated engine; CPU: the shipped INT8 model).",
        choices=PRECISIONS,
    ),
    ParamSpec(
        "sharpen_lanes",
        "bool",
        True,
        "Thin the model's LaneMarking to the bright stroke the image shows near it (the rest becomes Road): LaneMarking IoU 40 -> 50 on camvid_lanes val.",
    ),
    ParamSpec(
        "worker_threads",
        "int",
        2,
        "Frames served at once, each camera's in order: with 2, one camera's decoding and post-processing run beside another's inference.",
        min=1,
        max=8,
    ),
    ParamSpec("threads", "int", 0, "CPU threads for inference; 0 = all cores.", min=0, max=256),
    ParamSpec(
        "inference_streams",
        "int",
        0,
        "Frames inferred at once on the CPU (OpenVINO, ONNX Runtime), the inference threads split among them; 0 = one per camera, at most worker_threads. "
        "More serve several cameras more frames a second, each frame later; 1 = one frame at a time on every thread. "
        "More than cameras, with worker_threads above the cameras too (one camera: 2): a camera's next frame starts beside its last, "
        "its outputs still in order — "
        "for a CPU that takes longer over one camera's frame than the camera's period: more of its frames, each later.",
        min=0,
        max=8,
    ),
    ParamSpec(
        "coarse_reuse_ms",
        "double",
        70.0,
        "A camera's frame takes the network's stride-32 class scores from its frame at most this much older (by stamp) instead of computing them "
        "(OpenVINO; clockwork FCN): at 30 Hz two frames in three skip a quarter of the network. CamVid val with every frame's 67 ms old: "
        "74.20 -> 74.18 mIoU; 0 = every frame computes its own.",
        min=0.0,
        max=1000.0,
    ),
    ParamSpec("input_width", "int", 0, "Width frames are resized to (with input_height); 0 = each frame's own aspect at input_height.", min=0, max=8192),
    ParamSpec(
        "input_height",
        "int",
        0,
        "Height frames are resized to before inference; 0 = the model's input height (360). Alone, at each frame's own aspect: "
        "270 costs 3.4-3.8 mIoU for 44 % fewer pixels (BENCHMARKS.md).",
        min=0,
        max=8192,
    ),
    ParamSpec(
        "qos_reliability",
        "string",
        "best_effort",
        "Reliability of the image subscriptions (best_effort = sensor-data profile).",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec(
        "qos_depth",
        "int",
        5,
        "History depth of the image subscriptions: frames it cannot hold while the node is busy are counted in `frames_lost`.",
        min=1,
        max=100,
    ),
    ParamSpec("publish_overlay", "bool", True, "Publish the colour overlay (only computed while someone subscribes).", read_only=False),
    ParamSpec("overlay_alpha", "double", 0.5, "Opacity of class colours in the overlay.", read_only=False, min=0.0, max=1.0),
    ParamSpec(
        "drivable_classes",
        "string[]",
        list(DEFAULT_DRIVABLE),
        "Classes that count as drivable area (LaneMarking: painted lines never cut the polygon; skipped for a model without it).",
        read_only=False,
    ),
    ParamSpec("polygon_epsilon_px", "double", 2.0, "Douglas-Peucker tolerance of drivable polygons, pixels.", read_only=False, min=0.0, max=100.0),
    ParamSpec("polygon_min_area_px", "int", 400, "Drivable regions smaller than this (pixels) are ignored.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_hole_fill_px", "int", 100, "Holes smaller than this (pixels) are filled.", read_only=False, min=0, max=10_000_000),
    ParamSpec("polygon_max_vertices", "int", 64, "Most vertices per polygon ring; the tolerance grows until a ring fits.", read_only=False, min=3, max=10_000),
    ParamSpec(
        "lane_max_points",
        "int",
        2000,
        "Most lane-marking points per frame on lane_markings/points (spread evenly over the marking pixels).",
        read_only=False,
        min=1,
        max=1_000_000,
    ),
    ParamSpec(
        "lane_max_range",
        "double",
        30.0,
        "Metres ahead within which the ego lane's boundaries (lanes/ego_left, lanes/ego_right, lanes/center) are fitted to the lane paint.",
        read_only=False,
        min=2.0,
        max=200.0,
    ),
    ParamSpec(
        "ego_point_x",
        "double",
        0.5,
        "Ego point, fraction of image width: the drivable region containing it is the ego region.",
        read_only=False,
        min=0.0,
        max=1.0,
    ),
    ParamSpec("ego_point_y", "double", 0.95, "Ego point, fraction of image height (1 = bottom row).", read_only=False, min=0.0, max=1.0),
    ParamSpec(
        "temporal_smoothing",
        "double",
        0.0,
        "Share of the previous frames in the per-camera average of the drivable mask (0 = off). Damps flicker, "
        "but a change needs about 1/(1-value) frames to show.",
        read_only=False,
        min=0.0,
        max=0.95,
    ),
    ParamSpec(
        "base_frame",
        "string",
        "base_footprint",
        "Frame of the ground outputs; the ground is its z = 0 plane (REP-105 base_footprint: base_link projected on the ground; x forward, y left, z up).",
    ),
    ParamSpec(
        "camera_pose",
        "double[]",
        [],
        "Camera body pose in base_frame: x, y, z (m), roll, pitch, yaw (rad, pitch > 0 looks down); 6 values for all cameras "
        "or 6 per image topic, in order. Used when TF has no transform for the image's frame_id. Not set (default) and no "
        "TF: no ground outputs (a guessed pose would put them metres off).",
    ),
    ParamSpec("use_tf", "bool", True, "Look the camera pose up in TF (base_frame -> image frame_id, at the image's stamp) where tf2_ros is installed."),
    ParamSpec("tf_timeout", "double", 0.05, "Seconds to wait for TF to reach an image's stamp before serving it without ground outputs.", min=0.0, max=5.0),
    ParamSpec(
        "ground_max_range", "double", 50.0, "Ground points farther than this (m), and the sky, are clipped to this range along their ray.", min=1.0, max=1000.0
    ),
    ParamSpec("grid_resolution", "double", 0.2, "Bird's-eye grid cell size, metres.", min=0.01, max=10.0),
    ParamSpec("grid_x_min", "double", 0.0, "Grid's near edge along x, metres (x from grid_x_min to grid_x_max).", min=-500.0, max=500.0),
    ParamSpec("grid_x_max", "double", 40.0, "Grid's far edge ahead of base_frame's origin, metres.", min=-500.0, max=1000.0),
    ParamSpec("grid_half_width", "double", 20.0, "Grid extent to each side of base_frame's origin, metres.", min=0.1, max=500.0),
    ParamSpec(
        "fusion_rate",
        "double",
        10.0,
        "Hz (of the images' own time) at which the grid fused from every camera is published on fused/...; 0 = no fusion.",
        min=0.0,
        max=100.0,
    ),
    ParamSpec(
        "fusion_cameras",
        "string[]",
        [],
        "Image topics whose frames take part in the fused grid. Not set (default): every camera.",
    ),
    ParamSpec(
        "fusion_decay",
        "double",
        0.5,
        "Seconds in which a view's evidence in the fused grid falls to 1/e (a cell seen once fades; a late frame counts less).",
        read_only=False,
        min=0.01,
        max=60.0,
    ),
    ParamSpec(
        "fusion_max_age",
        "double",
        1.0,
        "A camera whose last frame is older than this (s, behind the newest) takes no part in the fused grid; diagnostics name it.",
        read_only=False,
        min=0.05,
        max=60.0,
    ),
    ParamSpec(
        "odom_frame",
        "string",
        "odom",
        "Fixed frame of the fused grid where TF has odom_frame -> base_frame (the grid then holds still while the car moves); "
        "else, or empty, the fused grid is in base_frame and holds each camera's latest view.",
    ),
    ParamSpec("max_pixels", "int", DEFAULT_MAX_PIXELS, "Frames with more pixels are refused and counted as bad input.", min=1, max=100_000_000),
    ParamSpec(
        "reduced_decode",
        "bool",
        True,
        "Decode a JPEG at the smallest 1/2, 1/4 or 1/8 scale that covers the network input (outputs stay at camera resolution).",
    ),
    ParamSpec("diagnostics_period", "double", 1.0, "Seconds between /diagnostics messages.", min=0.1, max=60.0),
    ParamSpec(
        "autostart",
        "bool",
        True,
        "Configure and activate at start (as a plain node). false: wait unconfigured for lifecycle transitions from a system manager.",
    ),
)
SPECS = {p.name: p for p in PARAMS}


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
    """A value against its declared type, range and choices (ValueError names the parameter)."""
    spec = SPECS[name]
    if not _IS[spec.type](value):
        raise ValueError(f"{name}: expected {spec.type}, got {value!r}")
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise ValueError(f"{name}: {value} outside [{spec.min}, {spec.max}]")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{name}: {value!r} is not one of {list(spec.choices)}")
