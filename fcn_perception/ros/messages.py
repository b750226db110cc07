"""The node's output messages, built once for both the node (rclpy) and replay (rosbags).

Builders take a ``new(msgtype, **fields)`` factory: :func:`rclpy_factory` makes rclpy messages,
:func:`fcn_perception.bags.bag_io.rosbags_message` makes rosbags ones. Fields are given as numpy arrays
where the message holds a primitive array; each factory converts them to what its library wants.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fcn_perception.scene.ground import GridSpec
    from fcn_perception.scene.pipeline import FrameResult

Factory = Callable[..., object]

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
POLYGON_STAMPED = "geometry_msgs/msg/PolygonStamped"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"


@dataclass(frozen=True)
class Output:
    topic: str  # relative to the camera namespace (image_transport / REP-144 style names)
    msgtype: str
    description: str
    live: bool = True  # published by the node (False: replay's compact form only)


OUTPUTS: dict[str, Output] = {
    "mask": Output("segmentation/mask", IMAGE, "mono8 class ids, the input's size, stamp and frame_id"),
    "mask_compressed": Output(
        "segmentation/mask/compressed", COMPRESSED, "the mask as lossless PNG (image_transport's compressed twin); only while subscribed"
    ),
    "overlay": Output("segmentation/overlay", IMAGE, "bgr8 class colours over the frame with the ego polygon; only while subscribed"),
    "confidence": Output(
        "segmentation/confidence",
        IMAGE,
        "mono8 per-pixel confidence: the top class's softmax probability, 255 = 1.0, the input's size; only while subscribed (replay: --confidence)",
    ),
    "polygon": Output("drivable_area/polygon", POLYGON_STAMPED, "ego drivable region's outline, pixels (x right, y down), input frame_id; empty = none ahead"),
    "polygon_ground": Output(
        "drivable_area/polygon_ground", POLYGON_STAMPED, "the same outline on the ground, metres in base_frame (needs CameraInfo); empty = none ahead"
    ),
    "grid": Output("drivable_area/grid", OCCUPANCY_GRID, "bird's-eye grid in base_frame: 0 drivable, 100 seen and not drivable, -1 not seen"),
    "markers": Output(
        "drivable_area/markers", MARKER_ARRAY, "regions and holes as line strips: ns image/* (optical frame, z = 1 m) and ground/*; lane points: ground/lane"
    ),
    "lane_points": Output(
        "lane_markings/points", POINT_CLOUD2, "lane-marking pixels on the ground, x y z float32 in base_frame (z = 0); needs CameraInfo and a pose"
    ),
    "overlay_compressed": Output("segmentation/overlay/compressed", COMPRESSED, "the overlay as JPEG (replay --overlay)", live=False),
}


def output_topic(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


_CLASSES: dict[str, type] = {}


def msg_class(msgtype: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class, imported on first use (one lookup for the
    node, the bag player and the recorder)."""
    cls = _CLASSES.get(msgtype)
    if cls is None:
        pkg, _, name = msgtype.split("/")
        cls = _CLASSES[msgtype] = getattr(importlib.import_module(f"{pkg}.msg"), name)
    return cls


def rclpy_factory() -> Factory:
    """``new(msgtype, **fields)`` for rclpy message classes (imported on first use)."""
    import array

    def new(msgtype: str, **fields):
        cls = msg_class(msgtype)
        for key, value in fields.items():
            if isinstance(value, np.ndarray):  # bytes for uint8[], array.array otherwise: both set without a per-element check
                fields[key] = value.tobytes() if value.dtype == np.uint8 else array.array(value.dtype.char, value.tobytes())
        return cls(**fields)

    return new


def image_msg(new: Factory, header, array: np.ndarray, encoding: str):
    """mono8 (HxW) or bgr8 (HxWx3) array -> sensor_msgs/Image with the input's header."""
    array = np.ascontiguousarray(array)
    return new(
        IMAGE,
        header=header,
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=array.strides[0],
        data=array.reshape(-1).view(np.uint8),
    )


def png_msg(new: Factory, header, mask: np.ndarray):
    """A mono8 mask as a lossless PNG CompressedImage (format ``png``): a tenth of the raw bytes on road scenes."""
    import cv2

    ok, buf = cv2.imencode(".png", mask, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding of the mask failed")
    return new(COMPRESSED, header=header, format="png", data=buf.reshape(-1))


def jpeg_msg(new: Factory, header, bgr: np.ndarray, quality: int = 85):
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding of the overlay failed")
    return new(COMPRESSED, header=header, format="jpeg", data=buf.reshape(-1))


def polygon_msg(new: Factory, header, vertices: np.ndarray | None):
    """PolygonStamped; ``None`` or no vertices publishes the empty polygon ("no drivable area ahead")."""
    points = [] if vertices is None else [new("geometry_msgs/msg/Point32", x=float(x), y=float(y), z=0.0) for x, y in vertices]
    return new(POLYGON_STAMPED, header=header, polygon=new("geometry_msgs/msg/Polygon", points=points))


def grid_msg(new: Factory, header, grid: np.ndarray, spec: GridSpec) -> object:
    """int8 grid (rows along y, columns along x) -> OccupancyGrid whose origin is the (x_min, -half_width) corner."""
    rows, cols = grid.shape
    origin = new(
        "geometry_msgs/msg/Pose",
        position=new("geometry_msgs/msg/Point", x=float(spec.x_min), y=float(-spec.half_width), z=0.0),
        orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
    )
    info = new("nav_msgs/msg/MapMetaData", map_load_time=header.stamp, resolution=float(spec.resolution), width=cols, height=rows, origin=origin)
    return new(OCCUPANCY_GRID, header=header, info=info, data=np.ascontiguousarray(grid, np.int8).reshape(-1))


_COLOURS = {"outer": (0.1, 0.9, 0.2), "hole": (0.95, 0.1, 0.1)}


def cloud_msg(new: Factory, header, points: np.ndarray):
    """(N, 3) float32 points -> PointCloud2 with fields x, y, z (float32, little endian), one row."""
    points = np.ascontiguousarray(points, "<f4").reshape(-1, 3)
    fields = [new("sensor_msgs/msg/PointField", name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]  # 7 = FLOAT32
    return new(
        POINT_CLOUD2,
        header=header,
        height=1,
        width=len(points),
        fields=fields,
        is_bigendian=False,
        point_step=12,
        row_step=12 * len(points),
        data=points.reshape(-1).view(np.uint8),
        is_dense=True,
    )


def markers_msg(new: Factory, image_header, ground_header, result: FrameResult):
    """DELETEALL, then every ring as a closed LINE_STRIP: image versions in the camera's optical frame on its
    z = 1 m plane (pixels scaled by the width when there is no CameraInfo), ground versions in base_frame."""
    markers = [new("visualization_msgs/msg/Marker", header=image_header, action=3)]  # DELETEALL: no stale rings
    h, w = result.mask.shape

    def ring_marker(header, ns: str, idx: int, pts: np.ndarray, z: float, width: float):
        closed = np.vstack([pts, pts[:1]])
        r, g, b = _COLOURS[ns.split("/")[1]]
        return new(
            "visualization_msgs/msg/Marker",
            header=header,
            ns=ns,
            id=idx,
            type=4,  # LINE_STRIP
            action=0,
            pose=new("geometry_msgs/msg/Pose", orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)),
            scale=new("geometry_msgs/msg/Vector3", x=width, y=0.0, z=0.0),
            color=new("std_msgs/msg/ColorRGBA", r=r, g=g, b=b, a=1.0),
            points=[new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=z) for x, y in closed],
        )

    counts = {"image/outer": 0, "image/hole": 0, "ground/outer": 0, "ground/hole": 0}

    def add(header, ns: str, pts: np.ndarray, z: float, width: float) -> None:
        markers.append(ring_marker(header, ns, counts[ns], pts, z, width))
        counts[ns] += 1

    for i, region in enumerate(result.regions):
        if result.ground is not None:
            outer_rays, hole_rays = result.ground.rays[i]
        else:  # no calibration: a 1 m wide image plane, 1 m ahead of the lens
            outer_rays = (region.outer - (w / 2, h / 2)) / w
            hole_rays = [(hole - (w / 2, h / 2)) / w for hole in region.holes]
        add(image_header, "image/outer", outer_rays, 1.0, 0.005)
        for hole in hole_rays:
            add(image_header, "image/hole", hole, 1.0, 0.005)
        if result.ground is not None:
            g = result.ground.regions[i]
            add(ground_header, "ground/outer", g.outer, 0.0, 0.1)
            for hole in g.holes:
                add(ground_header, "ground/hole", hole, 0.0, 0.1)
    if result.lanes is not None and len(result.lanes.ground):
        markers.append(
            new(
                "visualization_msgs/msg/Marker",
                header=ground_header,
                ns="ground/lane",
                id=0,
                type=8,  # POINTS
                action=0,
                pose=new("geometry_msgs/msg/Pose", orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)),
                scale=new("geometry_msgs/msg/Vector3", x=0.08, y=0.08, z=0.0),
                color=new("std_msgs/msg/ColorRGBA", r=1.0, g=0.9, b=0.1, a=1.0),
                points=[new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=0.0) for x, y, _ in result.lanes.ground],
            )
        )
    return new(MARKER_ARRAY, markers=markers)


def frame_messages(
    new: Factory,
    header,
    result: FrameResult,
    base_frame: str,
    overlay: np.ndarray | None = None,
    markers: bool = True,
    mask_png: bool = False,
    raw_mask: bool = True,
    overlay_jpeg: bool = False,
    confidence: bool = False,
) -> dict[str, object]:
    """Every output message of one frame, keyed like :data:`OUTPUTS`. Image outputs carry the input's
    header; ground outputs its stamp with ``base_frame``. Ground outputs are absent without calibration,
    the confidence image without a model that gives one.
    The node sends the raw mask and, for a subscriber, its PNG twin; replay writes both."""
    out = {"polygon": polygon_msg(new, header, result.ego.outer if result.ego is not None else None)}
    if raw_mask:
        out["mask"] = image_msg(new, header, result.mask, "mono8")
    if mask_png:
        out["mask_compressed"] = png_msg(new, header, result.mask)
    if confidence and result.confidence is not None:
        out["confidence"] = image_msg(new, header, result.confidence, "mono8")
    if overlay is not None:
        out["overlay_compressed" if overlay_jpeg else "overlay"] = (jpeg_msg if overlay_jpeg else image_msg)(
            new, header, overlay, *(() if overlay_jpeg else ("bgr8",))
        )
    ground_header = new("std_msgs/msg/Header", stamp=header.stamp, frame_id=base_frame)
    if result.ground is not None:
        ego = result.ground.ego
        out["polygon_ground"] = polygon_msg(new, ground_header, ego.outer if ego is not None else None)
        out["grid"] = grid_msg(new, ground_header, result.ground.grid, result.ground.spec)
    if result.lanes is not None:  # the same pose rules as polygon_ground: no pose, no cloud
        out["lane_points"] = cloud_msg(new, ground_header, result.lanes.ground)
    if markers:
        out["markers"] = markers_msg(new, header, ground_header, result)
    return out
