"""ROS 2's cv_bridge as the raw-image converter, where a ROS install provides it (not on PyPI:
PyPI's `cv-bridge` is ROS 1's and is not used). The core decodes with rosbags-image without it."""

from __future__ import annotations

from fcn_perception.scene.image_codec import RawConverter


def cv_bridge_converter() -> RawConverter | None:
    """``imgmsg_to_cv2(msg, "rgb8")`` of a CvBridge, or None where cv_bridge is not installed."""
    try:
        from cv_bridge import CvBridge  # type: ignore[import-not-found]

        bridge = CvBridge()
    except Exception:
        return None
    return lambda msg: bridge.imgmsg_to_cv2(msg, "rgb8")
