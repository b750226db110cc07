"""A camera's first frame size, heard while the model loads, so OpenVINO compiles its first graph,
and TensorRT builds its first engine, for the size the cameras send (``SegmenterConfig.first_frame``)."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

from rclpy.wait_for_message import wait_for_message

from fcn_perception.files import json_table, put_json_entry
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.ros.messages import msg_class
from fcn_perception.ros.topics import image_msgtype
from fcn_perception.scene.image_codec import frame_size

#: s from configure's start that the load waits for a first frame where no earlier start left one: a
#: camera already publishing is matched and heard within it (0.2-0.6 s at a start on the 2-core
#: EPYC); where none is, the model's own size is compiled this much later, and a camera that comes
#: after gets its size built then
FIRST_FRAME_WAIT_S = 0.75
STORE = "first_frames.json"  # in the cache directory: {image topic: [width, height]}


class FirstFrame:
    """The node's thread listens (:meth:`listen`), the model's load asks (a call). The answer is the
    size heard, else the one an earlier start heard on this topic (kept in the cache: a later start
    does not wait), else, once the wait is over, None. The load prepares its graph for the answer it
    has meanwhile (the model's own size at first), so a 4:3 camera's first start loses next to nothing."""

    def __init__(self, topic: str, cache: str = "", wait_s: float = FIRST_FRAME_WAIT_S) -> None:
        self.topic = topic
        self._deadline = time.monotonic() + wait_s
        self._heard = threading.Event()
        self.size: tuple[int, int] | None = None
        try:
            self._path: Path | None = cache_file(cache_dir(cache), STORE)
        except (OSError, ValueError):  # no usable cache: the load says why
            self._path = None
        kept = json_table(self._path).get(topic) if self._path else None
        self.remembered = tuple(kept) if isinstance(kept, list) and len(kept) == 2 and all(isinstance(v, int) and v > 0 for v in kept) else None

    def listen(self, node, qos) -> None:
        """One message of the topic (rclpy's ``wait_for_message``: a subscription and wait set of its
        own, so it works whether or not an executor runs the node), on the calling thread."""
        try:
            left = self._deadline - time.monotonic()
            if left > 0:
                heard, msg = wait_for_message(msg_class(image_msgtype(self.topic)), node, self.topic, qos_profile=qos, time_to_wait=left)
                self.size = frame_size(msg) if heard else None
        finally:
            self._heard.set()
        if self.size is not None and self.size != self.remembered:
            self._keep()

    def _keep(self) -> None:
        if self._path is None:
            return
        with contextlib.suppress(OSError):  # a read-only cache: the next start waits again
            put_json_entry(self._path, self.topic, list(self.size))

    def __call__(self, settled: bool = True) -> tuple[int, int] | None:
        """``settled`` False: what is known now, without waiting."""
        if settled and not self._heard.is_set() and self.remembered is None:
            self._heard.wait(max(0.0, self._deadline - time.monotonic()))
        return self.size or self.remembered

    def describe(self) -> str:
        """Where the answer came from, for the log."""
        return " (the first camera's frames)" if self.size else " (the first camera's frames at an earlier start)" if self.remembered else ""
