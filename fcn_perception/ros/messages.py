"""Message builders for the outputs (``ros/outputs.py`` names which output uses which), one for both
the node and replay.

Builders take a ``new(msgtype, **fields)`` factory, :func:`fcn_perception.ros.cdr.rosbags_message`:
the rosbags messages the node publishes as CDR bytes and replay writes (``ros/cdr.py`` says why not
rclpy's classes). Fields are given as numpy arrays where the message holds a primitive array.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from fcn_perception.ros.cdr import path_cdr
from fcn_perception.ros.topics import COMPRESSED, IMAGE

if TYPE_CHECKING:
    from fcn_perception.scene.ground import GridSpec
    from fcn_perception.scene.pipeline import FrameResult

Factory = Callable[..., object]

POLYGON_STAMPED = "geometry_msgs/msg/PolygonStamped"
OCCUPANCY_GRID = "nav_msgs/msg/OccupancyGrid"
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
PATH = "nav_msgs/msg/Path"


_CLASSES: dict[str, type] = {}


def msg_class(msgtype: str) -> type:
    """``sensor_msgs/msg/Image`` -> the rclpy message class, imported on first use (one lookup for the
    node, the bag player and the recorder)."""
    cls = _CLASSES.get(msgtype)
    if cls is None:
        pkg, _, name = msgtype.split("/")
        cls = _CLASSES[msgtype] = getattr(importlib.import_module(f"{pkg}.msg"), name)
    return cls


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
    points = [] if vertices is None else [new("geometry_msgs/msg/Point32", x=x, y=y, z=0.0) for x, y in np.asarray(vertices, float)[:, :2].tolist()]
    return new(POLYGON_STAMPED, header=header, polygon=new("geometry_msgs/msg/Polygon", points=points))


def grid_msg(new: Factory, header, grid: np.ndarray, spec: GridSpec) -> object:
    """int8 grid (rows along y, columns along x) -> OccupancyGrid whose origin is the (x_min, -half_width) corner."""
    return occupancy_msg(new, header, grid, (spec.x_min, -spec.half_width), spec.resolution)


def occupancy_msg(new: Factory, header, grid: np.ndarray, origin_xy: tuple[float, float], resolution: float) -> object:
    """int8 grid (rows along y, columns along x) -> OccupancyGrid with cell (0, 0)'s corner at ``origin_xy``."""
    rows, cols = grid.shape
    origin = new(
        "geometry_msgs/msg/Pose",
        position=new("geometry_msgs/msg/Point", x=float(origin_xy[0]), y=float(origin_xy[1]), z=0.0),
        orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0),
    )
    info = new("nav_msgs/msg/MapMetaData", map_load_time=header.stamp, resolution=float(resolution), width=cols, height=rows, origin=origin)
    return new(OCCUPANCY_GRID, header=header, info=info, data=np.ascontiguousarray(grid, np.int8).reshape(-1))


def path_msg(new: Factory, header, points: np.ndarray | None):
    """(N, 2) x, y on the ground (z = 0), ordered by increasing x -> nav_msgs/Path; each pose faces
    along the path (yaw of its tangent). ``None``: the empty Path ("that boundary is not found").
    Written straight as CDR (:func:`fcn_perception.ros.cdr.path_cdr` says why), not with ``new``."""
    rows = None
    if points is not None and len(points) >= 2:
        d = np.gradient(points, axis=0)
        half_yaw = np.arctan2(d[:, 1], d[:, 0]) / 2
        rows = np.column_stack([points[:, :2], np.sin(half_yaw), np.cos(half_yaw)])
    return path_cdr(header, rows)


def outline_marker(new: Factory, header, ns: str, points: np.ndarray, rgb: tuple[float, float, float], width: float = 0.1, idx: int = 0, z: float = 0.0):
    """A closed LINE_STRIP through (N, 2) points on the plane at height ``z`` (the ground: 0)."""
    return line_marker(new, header, ns, idx, np.vstack([points, points[:1]]), rgb, width, z)


def line_marker(new: Factory, header, ns: str, idx: int, points: np.ndarray, rgb: tuple[float, float, float], width: float = 0.1, z: float = 0.0):
    """A LINE_STRIP through (N, 2) points on the plane at height ``z`` (the ground: 0)."""
    return new(
        "visualization_msgs/msg/Marker",
        header=header,
        ns=ns,
        id=idx,
        type=4,  # LINE_STRIP
        action=0,
        pose=new("geometry_msgs/msg/Pose", orientation=new("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)),
        scale=new("geometry_msgs/msg/Vector3", x=width, y=0.0, z=0.0),
        color=new("std_msgs/msg/ColorRGBA", r=rgb[0], g=rgb[1], b=rgb[2], a=1.0),
        points=[new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=z) for x, y in points],
    )


_COLOURS = {"outer": (0.1, 0.9, 0.2), "hole": (0.95, 0.1, 0.1)}


def cloud_msg(new: Factory, header, points: np.ndarray):
    """(N, 3) float32 points -> PointCloud2 with fields x, y, z (float32, little endian), one row."""
    points = np.ascontiguousarray(points, "<f4").reshape(-1, 3)
    return table_msg(new, header, points.view(np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")])).reshape(-1))


#: numpy kinds -> sensor_msgs/PointField datatypes
_POINT_FIELD_TYPES = {"i1": 1, "u1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "f4": 7, "f8": 8}


def table_msg(new: Factory, header, rows: np.ndarray):
    """A structured numpy array -> PointCloud2 with one point per row and a field per column, named
    and typed: a table any ROS client reads with ``sensor_msgs_py.point_cloud2.read_points``."""
    rows = np.ascontiguousarray(rows)
    fields = []
    for name in rows.dtype.names:
        dt, offset = rows.dtype.fields[name]
        fields.append(new("sensor_msgs/msg/PointField", name=name, offset=offset, datatype=_POINT_FIELD_TYPES[dt.str.lstrip("<>|")], count=1))
    step = rows.dtype.itemsize
    return new(
        POINT_CLOUD2,
        header=header,
        height=1,
        width=len(rows),
        fields=fields,
        is_bigendian=False,
        point_step=step,
        row_step=step * len(rows),
        data=rows.view(np.uint8).reshape(-1),
        is_dense=True,
    )


def boundary_markers(new: Factory, header, lane) -> list:
    """A LINE_STRIP per boundary on the ground (ns ``ground/boundary``, id = its track id): ego-left
    cyan, ego-right magenta, adjacent grey — the overlay's colours."""
    colours = {-1: (0.0, 1.0, 1.0), 1: (1.0, 0.0, 1.0)}
    return [
        line_marker(new, header, "ground/boundary", int(b.track_id), b.points(), colours.get(b.position, (0.65, 0.65, 0.65)), 0.12) for b in lane.boundaries()
    ]


def markers_msg(new: Factory, image_header, ground_header, result: FrameResult):
    """DELETEALL, then every ring as a closed LINE_STRIP: image versions in the camera's optical frame on its
    z = 1 m plane (pixels scaled by the width when there is no CameraInfo), ground versions in base_frame."""
    markers = [new("visualization_msgs/msg/Marker", header=image_header, action=3)]  # DELETEALL: no stale rings
    w, h = result.size

    counts = {"image/outer": 0, "image/hole": 0, "ground/outer": 0, "ground/hole": 0}

    def add(header, ns: str, pts: np.ndarray, z: float, width: float) -> None:
        markers.append(outline_marker(new, header, ns, pts, _COLOURS[ns.split("/")[1]], width, counts[ns], z))
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
    if result.ego_lane is not None:
        markers += boundary_markers(new, ground_header, result.ego_lane)
    return new(MARKER_ARRAY, markers=markers)
