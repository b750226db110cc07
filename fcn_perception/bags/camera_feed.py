"""A recording's cameras as the node would see them: which topics are cameras, each camera's
workflow (its ``camera_pose`` from the car's parameters), its CameraInfo, and the recording's TF —
one piece for replay, compare and the label export.

CameraInfo and ``/tf_static`` usually come with or after the first frames: :meth:`CameraFeed.prime`
takes them up front so the first frames get ground outputs too; later ones update the cameras in
recorded order (:meth:`CameraFeed.follow`). A message that does not deserialize is counted by its
camera (``unreadable_message``), never fatal.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np

from fcn_perception.bags.recording import RawMessage, Recording
from fcn_perception.bags.tf_graph import TF_TOPICS, TfGraph
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.ros.cdr import typestore
from fcn_perception.ros.outputs import is_output_topic
from fcn_perception.ros.topics import CAMERA_INFO, IMAGE_TYPES, camera_info_topic, stamp_ns
from fcn_perception.scene.camera import CameraWorkflow

Cameras = dict[str, CameraWorkflow]


def camera_topics(rec: Recording) -> list[str]:
    """A recording's cameras: its Image/CompressedImage topics outside the node's own output names."""
    return [t for t, c in rec.connections.items() if c.msgtype in IMAGE_TYPES and not is_output_topic(t)]


def select_cameras(rec: Recording, topics: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """(the camera topics to segment, image topics left out and why): ``topics`` as named (each must
    be an image topic of the recording), else every camera topic."""
    available = {t: c.msgtype for t, c in rec.connections.items()}
    if topics:
        missing = [t for t in topics if t not in available]
        if missing:
            raise ValueError(f"topics not in {rec.path}: {missing} (it has {sorted(available)})")
        wrong = [t for t in topics if available[t] not in IMAGE_TYPES]
        if wrong:
            raise ValueError(f"not image topics: {wrong}")
        return list(topics), {}
    chosen = camera_topics(rec)
    why = "an output of fcn_perception (name it with --topics to segment it anyway)"
    skipped = {t: why for t, msgtype in available.items() if msgtype in IMAGE_TYPES and t not in chosen}
    if not chosen:
        raise ValueError(f"{rec.path} has no camera topics (sensor_msgs/Image or CompressedImage outside segmentation/ and drivable_area/)")
    return chosen, skipped


class CameraFeed:
    def __init__(self, rec: Recording, cfg: NodeConfig, topics: list[str] | None = None) -> None:
        self.rec, self.cfg = rec, cfg
        self.topics, self.skipped = select_cameras(rec, topics)
        self._order = {t: i for i, t in enumerate(dict.fromkeys(cfg.image_topics))}  # camera_pose is indexed like image_topics
        unposed = [t for t in self.topics if t not in self._order]
        if len(cfg.camera_pose) > 6 and unposed:
            raise ValueError(f"camera_pose gives one pose per image_topics entry, and {unposed} is not in image_topics {cfg.image_topics}")
        types = {t: c.msgtype for t, c in rec.connections.items()}
        self.info_topics = {camera_info_topic(t): t for t in self.topics if types.get(camera_info_topic(t)) == CAMERA_INFO}
        self.tf = TfGraph()
        self.use_tf = cfg.use_tf and any(t in types for t in TF_TOPICS)

    def workflows(self) -> Cameras:
        """A fresh workflow per camera (one set per pipeline: compare runs two)."""
        ground, why = self.cfg.ground(), "no {} in the bag"
        index = {t: self._order.get(t, 0) for t in self.topics}
        return {
            t: CameraWorkflow(t, index[t], self.cfg.pose(index[t]), ground, self.cfg.temporal_smoothing, why.format(camera_info_topic(t)), keep=None)
            for t in self.topics
        }

    def prime(self, *camera_sets: Cameras) -> None:
        if not (self.info_topics or self.use_tf):
            return
        for m in self.rec.messages(set(self.info_topics) | {"/tf_static"}):
            if m.topic == "/tf_static" or all(cams[self.info_topics[m.topic]].info is None for cams in camera_sets):
                self.follow(m, *camera_sets)

    def follow(self, m: RawMessage, *camera_sets: Cameras) -> bool:
        """Take a CameraInfo or TF message into the cameras' state; True when ``m`` was one. A
        malformed one is skipped, as tf2 would (an unreadable CameraInfo keeps the previous one)."""
        if m.topic in self.info_topics:
            with contextlib.suppress(Exception):
                info = typestore().deserialize_cdr(m.data, CAMERA_INFO)
                for cams in camera_sets:
                    cams[self.info_topics[m.topic]].info = info
            return True
        if m.topic in TF_TOPICS:
            if self.use_tf:
                with contextlib.suppress(Exception):
                    self.tf.add(typestore().deserialize_cdr(m.data, m.msgtype), static=m.topic == "/tf_static")
            return True
        return False

    def receive(self, m: RawMessage, *camera_sets: Cameras):
        """The frame message of a camera topic, counted as received by each set's camera; None for
        another topic, or for a message that does not deserialize (counted as a bad frame)."""
        if m.topic not in camera_sets[0]:
            return None
        try:
            msg = typestore().deserialize_cdr(m.data, m.msgtype)
        except Exception as exc:  # counted, never fatal
            for cams in camera_sets:
                cams[m.topic].unreadable(exc)
            return None
        for cams in camera_sets:
            cams[m.topic].received(msg.header)
        return msg

    def fixed_pose(self, fixed_frame: str, header) -> np.ndarray | None:
        """The car's pose (``header.frame_id``, base_frame) in ``fixed_frame`` at the header's stamp, from the recording's TF."""
        if not self.use_tf:
            return None
        return self.tf.lookup(fixed_frame, header.frame_id, stamp_ns(header))

    def odom(self, header) -> np.ndarray | None:
        """The car's pose in ``odom_frame`` at the image's stamp (the lane tracker's motion), or None."""
        if not self.cfg.odom_frame:
            return None
        return self.fixed_pose(self.cfg.odom_frame, SimpleNamespace(stamp=header.stamp, frame_id=self.cfg.base_frame))

    def pose(self, header) -> tuple[np.ndarray | None, str]:
        """The recording's TF at the image's stamp, by the node's rules (the camera then falls back to camera_pose)."""
        if not self.use_tf:
            return None, "no TF in the bag"
        base = self.cfg.base_frame
        m = self.tf.lookup(base, header.frame_id, stamp_ns(header)) if header.frame_id else None
        return (m, "tf in the bag") if m is not None else (None, f"the bag's TF has no {base} -> {header.frame_id or '(empty frame_id)'}")
