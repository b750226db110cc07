"""Output message construction shared by the node (rclpy types) and replay (rosbags types).

Both libraries' messages take the same keyword fields; they differ only in how a byte array is
held (rclpy: bytes, rosbags: numpy uint8) and in the point type, which callers pass in.
"""

from __future__ import annotations

import numpy as np

# output topics relative to a camera namespace (image_transport / REP-144 style names)
MASK_TOPIC = "segmentation/mask"
OVERLAY_TOPIC = "segmentation/overlay"
POLYGON_TOPIC = "drivable_area/polygon"


def output_topic(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"


def image_msg(cls, header, array: np.ndarray, encoding: str, numpy_data: bool = False):
    """mono8 (HxW) or bgr8 (HxWx3) array -> sensor_msgs/Image with the input's header."""
    array = np.ascontiguousarray(array)
    data = array.reshape(-1).view(np.uint8) if numpy_data else array.tobytes()
    return cls(header=header, height=array.shape[0], width=array.shape[1], encoding=encoding, is_bigendian=0, step=array.strides[0], data=data)


def polygon_msg(stamped_cls, polygon_cls, point_cls, header, vertices: np.ndarray | None):
    """PolygonStamped; ``None`` or no vertices publishes the empty polygon ("no drivable area ahead")."""
    points = [] if vertices is None else [point_cls(x=float(x), y=float(y), z=0.0) for x, y in vertices]
    return stamped_cls(header=header, polygon=polygon_cls(points=points))
