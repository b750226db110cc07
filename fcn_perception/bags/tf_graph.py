"""Camera poses from a recording's /tf_static and /tf, by the rules the node uses live: the chain of
transforms from the base frame to the image's frame_id at the image's stamp.

tf2 is not on PyPI. pytransform3d's TransformManager chains a static graph but has no notion of
a transform's stamp, which /tf needs, so this is a small graph of its own: static edges, and
timed edges looked up at the latest stamp not after the image's (within ``max_age``).
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from fcn_perception.ros.topics import stamp_ns
from fcn_perception.scene.ground import quaternion_matrix

TF_TOPICS = ("/tf_static", "/tf")


class TfGraph:
    def __init__(self, max_age_s: float = 1.0) -> None:
        self.static: dict[tuple[str, str], np.ndarray] = {}
        self.timed: dict[tuple[str, str], tuple[list[int], list[np.ndarray]]] = {}
        self.neighbours: dict[str, set[str]] = {}
        self.max_age_ns = int(max_age_s * 1e9)

    def add(self, msg, static: bool) -> None:
        """Every transform of a tf2_msgs/TFMessage (a bad one is skipped, as tf2 would)."""
        for t in msg.transforms:
            parent, child = t.header.frame_id.lstrip("/"), t.child_frame_id.lstrip("/")
            if not parent or not child or parent == child:
                continue
            try:
                m = np.eye(4)
                r, p = t.transform.rotation, t.transform.translation
                m[:3, :3] = quaternion_matrix(r.x, r.y, r.z, r.w)
                m[:3, 3] = (p.x, p.y, p.z)
            except ValueError:
                continue
            self.neighbours.setdefault(parent, set()).add(child)
            self.neighbours.setdefault(child, set()).add(parent)
            if static:
                self.static[(parent, child)] = m
            else:
                stamps, mats = self.timed.setdefault((parent, child), ([], []))
                i = bisect.bisect_right(stamps, stamp_ns(t.header))
                stamps.insert(i, stamp_ns(t.header))
                mats.insert(i, m)

    def _edge(self, parent: str, child: str, stamp: int) -> np.ndarray | None:
        if (parent, child) in self.static:
            return self.static[(parent, child)]
        if (parent, child) in self.timed:
            stamps, mats = self.timed[(parent, child)]
            i = bisect.bisect_right(stamps, stamp) - 1
            if i >= 0 and stamp - stamps[i] <= self.max_age_ns:
                return mats[i]
        return None

    def lookup(self, target: str, source: str, stamp: int) -> np.ndarray | None:
        """4x4 pose of ``source`` in ``target`` (maps source coordinates to target ones), or None."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        previous: dict[str, tuple[str, np.ndarray]] = {}
        queue = deque([target])
        seen = {target}
        while queue:
            frame = queue.popleft()
            for nxt in self.neighbours.get(frame, ()):
                if nxt in seen:
                    continue
                down = self._edge(frame, nxt, stamp)  # frame is nxt's parent
                step = down if down is not None else (np.linalg.inv(up) if (up := self._edge(nxt, frame, stamp)) is not None else None)
                if step is None:
                    continue
                seen.add(nxt)
                previous[nxt] = (frame, step)
                if nxt == source:
                    m = np.eye(4)
                    node = source
                    while node != target:
                        parent, step = previous[node]
                        m = step @ m
                        node = parent
                    return m
                queue.append(nxt)
        return None
