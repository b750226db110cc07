"""The one registry of per-camera outputs: topic, type, when each is computed, and its builder.

The node creates its publishers from it and asks it what to build for a frame (an output computed
"only while subscribed" is built only when a subscriber is there); replay writes what it says
replay writes (some only when asked: ``--overlay``, ``--confidence``); the README's topic table is
generated from it (``tools/readme_tables.py``). A new output is one entry here and its builder.

Builders take a :class:`Frame` and return the message, or None where the frame has none (no pose:
no ground outputs; a model without confidence: no confidence image). Messages are made with a
``new(msgtype, **fields)`` factory (``cdr.rosbags_message``: the node serializes what it builds and
publishes the bytes, replay writes them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fcn_perception.ros import messages as m
from fcn_perception.ros.topics import COMPRESSED, IMAGE
from fcn_perception.scene.lane_lines import boundary_table

if TYPE_CHECKING:
    from fcn_perception.scene.pipeline import FrameResult

#: when the node computes an output
ALWAYS, SUBSCRIBED, NEVER = "always", "while subscribed", "never"
#: when replay writes one (ASKED: only with the replay option named by ``Output.ask``)
ASKED = "when asked"


@dataclass
class Frame:
    """What every builder reads: one frame's result, its header and the ground header (the input's
    stamp with ``base_frame``), and the overlay picture, drawn on first use and kept."""

    new: Callable[..., object]
    header: object
    ground_header: object
    result: FrameResult
    draw: Callable[[], np.ndarray] | None = None
    _picture: np.ndarray | None = field(default=None, repr=False)

    @property
    def picture(self) -> np.ndarray:
        if self._picture is None:
            self._picture = self.draw()
        return self._picture


@dataclass(frozen=True)
class Output:
    topic: str  # relative to the camera namespace (image_transport / REP-144 style names)
    msgtype: str
    description: str  # the README's topic table
    build: Callable[[Frame], object | None]
    node: str = ALWAYS  # ALWAYS | SUBSCRIBED | NEVER
    replay: str = ALWAYS  # ALWAYS | ASKED | NEVER
    gate: str = ""  # node: a bool parameter that must be true as well (publish_overlay)
    ask: str = ""  # replay: the option that asks for it (ASKED)

    @property
    def live(self) -> bool:
        """Published by the node."""
        return self.node != NEVER


def _boundary(f: Frame, side: str):
    """A boundary's Path; the empty Path when it is not found; none without lane points (no pose)."""
    if f.result.ego_lane is None:
        return None
    b = getattr(f.result.ego_lane, side)
    return m.path_msg(f.new, f.ground_header, b.points() if b is not None else None)


def _ground(build: Callable[[Frame], object]) -> Callable[[Frame], object | None]:
    """Ground outputs exist only for a calibrated, posed camera."""
    return lambda f: build(f) if f.result.ground is not None else None


OUTPUTS: dict[str, Output] = {
    "mask": Output(
        "segmentation/mask",
        IMAGE,
        "class id per pixel (mono8), at the camera's resolution (ids: [MODEL.md](MODEL.md))",
        lambda f: m.image_msg(f.new, f.header, f.result.mask, "mono8"),
    ),
    "mask_compressed": Output(
        "segmentation/mask/compressed",
        COMPRESSED,
        "the same mask as lossless PNG (format `png`), image_transport's compressed twin for links between computers",
        lambda f: m.png_msg(f.new, f.header, f.result.mask),
        node=SUBSCRIBED,
    ),
    "overlay": Output(
        "segmentation/overlay",
        IMAGE,
        "class colours blended over the frame, ego polygon outlined (bgr8); `publish_overlay`",
        lambda f: m.image_msg(f.new, f.header, f.picture, "bgr8"),
        node=SUBSCRIBED,
        replay=NEVER,
        gate="publish_overlay",
    ),
    "overlay_compressed": Output(
        "segmentation/overlay/compressed",
        COMPRESSED,
        "the overlay as JPEG, in replay's output bags (`--overlay`)",
        lambda f: m.jpeg_msg(f.new, f.header, f.picture),
        node=NEVER,
        replay=ASKED,
        ask="overlay",
    ),
    "confidence": Output(
        "segmentation/confidence",
        IMAGE,
        "per-pixel confidence (mono8): the top class's softmax probability, 255 = 1.0, at the camera's resolution"
        " ([MODEL.md](MODEL.md#confidence) says what it is worth); replay: `--confidence`",
        lambda f: None if f.result.confidence is None else m.image_msg(f.new, f.header, f.result.confidence, "mono8"),
        node=SUBSCRIBED,
        replay=ASKED,
        ask="confidence",
    ),
    "polygon": Output(
        "drivable_area/polygon",
        m.POLYGON_STAMPED,
        "ego drivable region's outer contour in image pixels (x right, y down), input frame_id; empty = no drivable area ahead",
        lambda f: m.polygon_msg(f.new, f.header, f.result.ego.outer if f.result.ego is not None else None),
    ),
    "polygon_ground": Output(
        "drivable_area/polygon_ground",
        m.POLYGON_STAMPED,
        "the same contour on the ground plane z = 0 of `base_frame`, metres (x forward, y left); empty = no drivable area ahead; needs CameraInfo and a pose",
        _ground(lambda f: m.polygon_msg(f.new, f.ground_header, f.result.ground.ego.outer if f.result.ground.ego is not None else None)),
    ),
    "grid": Output(
        "drivable_area/grid",
        m.OCCUPANCY_GRID,
        "bird's-eye grid in `base_frame`: 0 = drivable, 100 = seen and not drivable, -1 = outside the camera's view; needs CameraInfo and a pose",
        _ground(lambda f: m.grid_msg(f.new, f.ground_header, f.result.ground.grid, f.result.ground.spec)),
    ),
    "markers": Output(
        "drivable_area/markers",
        m.MARKER_ARRAY,
        "every region (green) and hole (red) as closed line strips: ns `image/outer`, `image/hole` in the camera's optical frame on"
        " its z = 1 m plane, ns `ground/outer`, `ground/hole` in `base_frame`; the lane points as POINTS (yellow), ns `ground/lane`;"
        " the lane boundaries as LINE_STRIPs, ns `ground/boundary` (ego-left cyan, ego-right magenta, adjacent grey; id = track id);"
        " starts with DELETEALL",
        lambda f: m.markers_msg(f.new, f.header, f.ground_header, f.result),
        node=SUBSCRIBED,
    ),
    "ego_left": Output(
        "lanes/ego_left",
        m.PATH,
        "the ego lane's left boundary on the ground: poses in `base_frame` by increasing x, every 0.5 m, z = 0, through the centre of its"
        " line and across the gaps of a dashed one, within `lane_max_range`, tracked over frames (bridged for 2 frames without paint);"
        " empty = not found; the same pose rules as `polygon_ground`",
        lambda f: _boundary(f, "left"),
    ),
    "ego_right": Output(
        "lanes/ego_right",
        m.PATH,
        "the ego lane's right boundary, as `lanes/ego_left`",
        lambda f: _boundary(f, "right"),
    ),
    "lane_center": Output(
        "lanes/center",
        m.PATH,
        "the ego lane's centre line where both boundaries are found (empty otherwise)",
        lambda f: None if f.result.ego_lane is None else m.path_msg(f.new, f.ground_header, f.result.ego_lane.center()),
    ),
    "lane_boundaries": Output(
        "lanes/boundaries",
        m.POINT_CLOUD2,
        "every lane boundary found, one row (point) each, left to right, in `base_frame`: fields `position` int8 (ego-left -1,"
        " ego-right +1, adjacent -2 / +2), `kind` uint8 (0 unknown, 1 solid, 2 dashed, 3 double), `colour` uint8 (0 unknown,"
        " 1 white, 2 yellow), `bridged` uint8 (frames since seen), `track_id` uint32, `confidence` float32 (0-1), `x_min`, `x_max`"
        " float32 (valid range, m), `c0`..`c3` float32 (y = c0 + c1 x + c2 x² + c3 x³, m); read with"
        " `sensor_msgs_py.point_cloud2.read_points`; no x/y/z fields (not for RViz: see the markers); the same pose rules as"
        " `polygon_ground`",
        lambda f: None if f.result.ego_lane is None else m.table_msg(f.new, f.ground_header, boundary_table(f.result.ego_lane)),
    ),
    "lane_points": Output(
        "lane_markings/points",
        m.POINT_CLOUD2,
        "lane-marking pixels of the mask (LaneMarking) on the ground: fields x, y, z float32, in `base_frame`, z = 0, at most"
        " `lane_max_points` spread over the markings; pixels whose ray misses the ground within `ground_max_range` are dropped,"
        " not clipped; the same pose rules as `polygon_ground`",
        lambda f: None if f.result.lanes is None else m.cloud_msg(f.new, f.ground_header, f.result.lanes.ground),
    ),
}


@dataclass
class FusedFrame:
    """What the fused outputs' builders read: the fused grid at one time, its header (the newest
    image's stamp; odom_frame or base_frame) and its ego drivable polygon (None: none ahead)."""

    new: Callable[..., object]
    header: object
    view: object  # scene.fusion.FusedView
    polygon: np.ndarray | None


def _fused_markers(f: FusedFrame):
    markers = [f.new("visualization_msgs/msg/Marker", header=f.header, action=3)]  # DELETEALL
    if f.polygon is not None:
        markers.append(m.outline_marker(f.new, f.header, "fused/ego", f.polygon, (0.1, 0.9, 0.2)))
    return f.new(m.MARKER_ARRAY, markers=markers)


#: The node-level outputs fused from every camera, under the node's namespace (replay: at the root).
FUSED_OUTPUTS: dict[str, Output] = {
    "fused_grid": Output(
        "fused/drivable_grid",
        m.OCCUPANCY_GRID,
        "the grid fused from every camera: 0 = drivable, 100 = seen and not drivable, -1 = unknown (no camera saw it, or its view"
        " faded); in `odom_frame` where TF has it (the grid holds still while the car moves), else `base_frame` with the per-camera"
        " grid's geometry",
        lambda f: m.occupancy_msg(f.new, f.header, f.view.occupancy(), f.view.origin, f.view.resolution),
    ),
    "fused_cost": Output(
        "fused/drivable_cost",
        m.OCCUPANCY_GRID,
        "the same grid as a cost: 100 x (1 - drivable probability), -1 unknown (probabilities weighted by each pixel's confidence and by distance)",
        lambda f: m.occupancy_msg(f.new, f.header, f.view.cost(1.0 - f.view.drivable), f.view.origin, f.view.resolution),
    ),
    "fused_lanes": Output(
        "fused/lane_grid",
        m.OCCUPANCY_GRID,
        "lane-paint probability x 100 per cell, -1 unknown",
        lambda f: m.occupancy_msg(f.new, f.header, f.view.cost(f.view.lane), f.view.origin, f.view.resolution),
    ),
    "fused_polygon": Output(
        "fused/drivable_area/polygon_ground",
        m.POLYGON_STAMPED,
        "the fused drivable region ahead of the car (holding the first drivable cell on its axis), counter-clockwise, in the grid's frame; empty = none",
        lambda f: m.polygon_msg(f.new, f.header, f.polygon),
    ),
    "fused_markers": Output(
        "fused/markers",
        m.MARKER_ARRAY,
        "the fused ego region's outline as a LINE_STRIP (ns `fused/ego`), after DELETEALL",
        _fused_markers,
        node=SUBSCRIBED,
    ),
}


def build_fused(keys: list[str], new: Callable[..., object], header, view, polygon) -> dict[str, object]:
    frame = FusedFrame(new, header, view, polygon)
    return {key: FUSED_OUTPUTS[key].build(frame) for key in keys}


#: First path segments of what the node publishes under a camera namespace: never camera inputs.
OUTPUT_ROOTS = tuple(dict.fromkeys(o.topic.split("/")[0] for o in (*OUTPUTS.values(), *FUSED_OUTPUTS.values())))


def is_output_topic(topic: str) -> bool:
    """A topic the node itself writes (``.../segmentation/...``, ``.../drivable_area/...``): an earlier
    run's output, not a camera, however its type looks."""
    return any(part in OUTPUT_ROOTS for part in topic.strip("/").split("/"))


def node_keys(subscribed: Callable[[str], bool], enabled: Callable[[str], bool], registry: dict[str, Output] | None = None) -> list[str]:
    """What the node builds for a frame (``registry``: :data:`OUTPUTS`, or :data:`FUSED_OUTPUTS` for
    a fused grid): every ALWAYS output, and a SUBSCRIBED one while ``subscribed(key)`` and its gate
    parameter (``enabled(name)``) say so."""
    items = (OUTPUTS if registry is None else registry).items()
    return [k for k, o in items if o.node == ALWAYS or (o.node == SUBSCRIBED and (not o.gate or enabled(o.gate)) and subscribed(k))]


def replay_keys(asked: set[str]) -> list[str]:
    """What replay writes: every ALWAYS output, and an ASKED one when its option is in ``asked``."""
    return [k for k, o in OUTPUTS.items() if o.replay == ALWAYS or (o.replay == ASKED and o.ask in asked)]


def build(keys: list[str], new: Callable[..., object], header, result: FrameResult, base_frame: str, draw=None) -> dict[str, object]:
    """The messages of ``keys`` for one frame (those the frame has). Image outputs carry the input's
    header; ground outputs its stamp with ``base_frame``."""
    frame = Frame(new, header, new("std_msgs/msg/Header", stamp=header.stamp, frame_id=base_frame), result, draw)
    out = {}
    for key in keys:
        msg = OUTPUTS[key].build(frame)
        if msg is not None:
            out[key] = msg
    return out
