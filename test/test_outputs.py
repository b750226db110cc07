"""The output registry is the one place an output is added: a new entry (topic, type, builder) is
published by the node and written by replay with nothing else changed; and what each side builds
follows the entry's policy (always, while subscribed, when asked); a builder that writes its CDR itself
(the lane Paths) gives rosbags' own bytes."""

from __future__ import annotations

import numpy as np
import pytest
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.bags.replay import replay
from fcn_perception.ros import messages, outputs
from fcn_perception.ros.cdr import Cdr, header, rosbags_message, serialize, typestore
from fcn_perception.ros.topics import IMAGE
from fcn_perception.tools.demo import SAMPLE_BAG, SAMPLE_CAMERA_POSE
from fcn_perception.waiting import wait_until

TOPIC = "/testcam/image_raw"


def _ego_image(frame: outputs.Frame):
    """The new output of the test: the ego region as a mono8 image (255 inside)."""
    from fcn_perception.tools.compare import ego_mask

    return messages.image_msg(frame.new, frame.header, ego_mask(frame.result).astype(np.uint8) * 255, "mono8")


@pytest.fixture
def ego_output(monkeypatch):
    entry = outputs.Output("drivable_area/ego_mask", IMAGE, "the ego region as mono8 (a test's own output)", _ego_image)
    monkeypatch.setitem(outputs.OUTPUTS, "ego_mask", entry)
    return entry


def test_a_new_registry_entry_is_published_by_the_node_and_written_by_replay(ros_node, ego_output, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from fcn_perception.ros.node import FcnPerceptionNode

    got = []
    sub = ros_node.create_subscription(Image, "/testcam/drivable_area/ego_mask", got.append, 10)
    node = FcnPerceptionNode(parameter_overrides=[Parameter("image_topics", value=[TOPIC])])
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node.trigger_activate()
        node.worker.stop()  # the test serves the frame itself
        rgb = np.random.default_rng(0).integers(0, 255, (360, 480, 3), dtype=np.uint8)
        msg = Image(height=360, width=480, encoding="rgb8", step=480 * 3, data=rgb.tobytes())
        msg.header.stamp.sec, msg.header.frame_id = 7, "testcam_optical_frame"
        assert wait_until(lambda: node.io[0].pubs["ego_mask"].get_subscription_count() > 0, 20)
        node._on_image(0, msg)
        node.worker.serve_one(*node.worker.take())
        assert wait_until(lambda: got, 20)
        assert got[0].header.stamp.sec == 7 and got[0].encoding == "mono8" and (got[0].height, got[0].width) == (360, 480)
    finally:
        node.on_shutdown(None)
        node.destroy_node()
        ros_node.destroy_subscription(sub)

    summary = replay(SAMPLE_BAG, tmp_path / "out", overrides={"camera_pose": list(SAMPLE_CAMERA_POSE)}, progress=False)
    ns = "/camera_front"
    written = list(read_messages(tmp_path / "out", [f"{ns}/drivable_area/ego_mask"]))
    masks = list(read_messages(tmp_path / "out", [f"{ns}/segmentation/mask"]))
    assert len(written) == len(masks) == summary.frames > 0
    assert [m.msg.header.stamp for m in written] == [m.msg.header.stamp for m in masks]


def test_what_node_and_replay_build_follows_each_entrys_policy():
    everything = lambda key: True  # noqa: E731 - subscribed / enabled
    nothing = lambda key: False  # noqa: E731
    assert set(outputs.node_keys(everything, everything)) == {k for k, o in outputs.OUTPUTS.items() if o.live}
    unwatched = outputs.node_keys(nothing, everything)  # nobody subscribed: only what is always sent
    assert set(unwatched) == {k for k, o in outputs.OUTPUTS.items() if o.node == outputs.ALWAYS}
    assert "overlay" not in outputs.node_keys(everything, nothing)  # publish_overlay false
    assert "markers" in outputs.node_keys(everything, nothing)
    fused = outputs.FUSED_OUTPUTS  # the fused grid's outputs, by the same rule
    assert set(outputs.node_keys(nothing, everything, fused)) == set(fused) - {"fused_markers"}
    assert set(outputs.node_keys(everything, everything, fused)) == set(fused)
    plain = set(outputs.replay_keys(set()))
    assert "overlay_compressed" not in plain and "confidence" not in plain and {"mask", "mask_compressed", "markers"} <= plain
    assert {"overlay_compressed", "confidence"} <= set(outputs.replay_keys({"overlay", "confidence"}))
    assert outputs.is_output_topic("/cam/lane_markings/points") and not outputs.is_output_topic("/cam/image_raw")


@pytest.mark.parametrize("frame_id", ["", "a", "map", "odom1", "base_link", "base_footprint", "camera_front_optical_frame"])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 61])
def test_a_path_written_straight_as_cdr_is_the_bytes_rosbags_writes(frame_id, n):
    """Paths skip rosbags' dataclasses (``cdr.path_cdr``): every frame-id length puts the padding
    elsewhere, and the first pose starts 4- or 8-aligned, so each must come out as rosbags' own."""
    hdr = header(1_796_600_000_123_456_789 + n, frame_id)
    rng = np.random.default_rng(n + len(frame_id))
    points = np.column_stack([np.sort(rng.uniform(0, 30, n)), rng.uniform(-4, 4, n)])
    fast = messages.path_msg(rosbags_message, hdr, points if n else None)
    assert isinstance(fast, Cdr)
    poses = []
    if n >= 2:
        d = np.gradient(points, axis=0)
        half_yaw = np.arctan2(d[:, 1], d[:, 0]) / 2
        for (x, y), qz, qw in zip(points.tolist(), np.sin(half_yaw).tolist(), np.cos(half_yaw).tolist(), strict=True):
            q = rosbags_message("geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=qz, w=qw)
            pose = rosbags_message("geometry_msgs/msg/Pose", position=rosbags_message("geometry_msgs/msg/Point", x=x, y=y, z=0.0), orientation=q)
            poses.append(rosbags_message("geometry_msgs/msg/PoseStamped", header=hdr, pose=pose))
    slow = rosbags_message(messages.PATH, header=hdr, poses=poses)
    assert serialize(fast, messages.PATH) == bytes(typestore().serialize_cdr(slow, messages.PATH))
    for back in (fast.message, deserialize_message(fast.data, Path)):  # as rosbags and rclpy read it
        assert back.header.frame_id == frame_id and len(back.poses) == (n if n >= 2 else 0)
        if n >= 2:
            assert [p.pose.position.x for p in back.poses] == points[:, 0].tolist()
            assert back.poses[-1].header.stamp.nanosec == hdr.stamp.nanosec
