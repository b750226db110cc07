"""What the benchmarks measure on: the sample drive's real frames and its camera at any size. (The
CPU they ran on, which names every figure, is ``fcn_perception.cpu``'s.)"""

from __future__ import annotations

import numpy as np

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.ros.topics import CAMERA_INFO, COMPRESSED
from fcn_perception.tools.demo import SAMPLE_BAG


def sample_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    import cv2

    frames = [cv2.imdecode(m.msg.data, cv2.IMREAD_COLOR) for m in read_messages(SAMPLE_BAG) if m.msgtype == COMPRESSED]
    frames = [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in frames]
    return [frames[i % len(frames)] for i in range(count)]


def sample_camera_info(size: tuple[int, int]):
    """The sample drive's CameraInfo (a rosbags message) scaled to a ``size`` (w, h) camera."""
    info = next(m.msg for m in read_messages(SAMPLE_BAG) if m.msgtype == CAMERA_INFO)
    sx, sy = size[0] / info.width, size[1] / info.height
    info.k = np.asarray(info.k) * np.array([sx, 1, sx, 1, sy, sy, 1, 1, 1])
    info.width, info.height = size
    return info
