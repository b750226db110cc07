"""A camera's first frame size, heard while the model loads, so OpenVINO compiles its first graph
for the size the cameras send (``SegmenterConfig.first_frame``)."""

from __future__ import annotations

import threading
import time

from rclpy.wait_for_message import wait_for_message

from fcn_perception.ros.messages import msg_class
from fcn_perception.ros.topics import image_msgtype
from fcn_perception.scene.image_codec import frame_size

#: s from configure's start that the load waits for a first frame: a camera already publishing is
#: matched and heard within it (0.2-0.6 s at a start on the 2-core EPYC); where none is, the model's
#: own size is compiled this much later, and a camera that comes after gets its size built then
FIRST_FRAME_WAIT_S = 0.75


class FirstFrame:
    """The node's thread listens (:meth:`listen`), the model's load asks (a call). The load never
    waits past the deadline, whether or not :meth:`listen` ran."""

    def __init__(self, wait_s: float = FIRST_FRAME_WAIT_S) -> None:
        self.wait_s = wait_s
        self._deadline = time.monotonic() + wait_s
        self._heard = threading.Event()
        self.size: tuple[int, int] | None = None

    def listen(self, node, topic: str, qos) -> None:
        """One message of ``topic`` (rclpy's ``wait_for_message``: a subscription and wait set of its
        own, so it works whether or not an executor runs the node), on the calling thread."""
        msg_type = msg_class(image_msgtype(topic))
        try:
            left = self._deadline - time.monotonic()
            if left > 0:
                heard, msg = wait_for_message(msg_type, node, topic, qos_profile=qos, time_to_wait=left)
                self.size = frame_size(msg) if heard else None
        finally:
            self._heard.set()

    def __call__(self) -> tuple[int, int] | None:
        self._heard.wait(max(0.0, self._deadline - time.monotonic()))
        return self.size
