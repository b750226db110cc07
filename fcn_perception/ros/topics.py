"""Topic and message-type names of the ROS interface (image_transport / REP-144 conventions), with
no ROS import: the node, replay and the tools all name topics through here."""

from __future__ import annotations

from fcn_perception.scene.image_codec import stamp_ns  # noqa: F401  (callers name topics and stamps through here)

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE_TYPES = (IMAGE, COMPRESSED)
# image_transport base names, longest first so "image_raw/compressed" wins over "compressed"
_IMAGE_SUFFIXES = ("image_raw/compressed", "image/compressed", "image_raw", "image")


def camera_namespace(topic: str) -> str:
    """``/cam_front/image/compressed`` -> ``/cam_front``: where a camera's outputs are published."""
    t = topic.rstrip("/")
    for suffix in _IMAGE_SUFFIXES:
        if t == suffix or t.endswith("/" + suffix):
            ns = t[: -len(suffix)].rstrip("/")
            return ns or ""
    return t


def image_msgtype(topic: str) -> str:
    """The message type an image topic carries by image_transport's naming: ``.../compressed`` a
    CompressedImage, anything else an Image."""
    return COMPRESSED if topic.rstrip("/").endswith("/compressed") else IMAGE


def camera_info_topic(image_topic: str) -> str:
    """``/cam_front/image_raw/compressed`` -> ``/cam_front/camera_info`` (image_transport's pairing)."""
    return f"{camera_namespace(image_topic)}/camera_info"


def output_topic(namespace: str, name: str) -> str:
    return f"{namespace.rstrip('/')}/{name}"
