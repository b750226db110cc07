"""Shared fixtures: the real CamVid data beside the repo and the shipped model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID = Path(os.environ.get("CAMVID_DIR", REPO.parent / "shared" / "data" / "camvid"))


def cpu_has_vnni() -> bool:
    """INT8 dot products with VNNI (Intel Xeon, AMD Zen 4 here) or without (AMD Zen 3 here)."""
    from fcn_perception.cpu import this_cpu

    return this_cpu().vnni


@pytest.fixture(scope="session")
def int8_vnni() -> bool:
    return cpu_has_vnni()


@pytest.fixture(scope="session")
def camvid() -> Path:
    if not (CAMVID / "train").is_dir():
        pytest.fail(f"CamVid not found at {CAMVID}: the suite needs ../shared/data/camvid (or CAMVID_DIR)")
    return CAMVID


@pytest.fixture(scope="session")
def tiny_camvid(tmp_path_factory, camvid) -> Path:
    """A few real frames in the CamVid layout, for end-to-end runs that must stay fast."""
    root = tmp_path_factory.mktemp("tiny_camvid")
    for split, n in (("train", 4), ("val", 2)):
        for sub in (split, f"{split}annot"):
            (root / sub).mkdir()
            for f in sorted((camvid / sub).iterdir())[:n]:
                shutil.copy(f, root / sub / f.name)
    return root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """ONNX exports go to one per-session cache, never the user's ~/.cache (session-wide, so
    module-scoped fixtures use it too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FCN_PERCEPTION_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        yield


# ROS 2: every test session gets its own DDS domain, so parallel runs never hear each other.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def ros_node():
    """A real rclpy node spinning in a background thread for the test process's publishers/subscribers."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    rclpy.init()
    node = rclpy.create_node("fcn_perception_test")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def sample_bag() -> Path:
    from fcn_perception.tools.demo import SAMPLE_BAG

    return SAMPLE_BAG


@pytest.fixture(scope="session")
def two_camera_bag(tmp_path_factory, sample_bag) -> Path:
    """The sample drive as a compressed front camera plus the same frames as a raw bgr8 rear camera."""
    import cv2

    from fcn_perception.bags.bag_io import BagWriter, raw_image, read_messages
    from fcn_perception.ros.topics import COMPRESSED, IMAGE, stamp_ns

    out = tmp_path_factory.mktemp("bags") / "two_cameras"
    with BagWriter(out) as bag:
        for m in read_messages(sample_bag):
            bag.write(m.topic, m.msgtype, m.timestamp, m.msg)
            if m.msgtype == COMPRESSED:
                bgr = cv2.imdecode(m.msg.data, cv2.IMREAD_COLOR)
                rear = raw_image(stamp_ns(m.msg.header), "camera_rear_optical_frame", bgr, "bgr8")
                bag.write("/camera_rear/image_raw", IMAGE, m.timestamp, rear)
    return out


@pytest.fixture(scope="session")
def colcon_install(tmp_path_factory) -> Path:
    """The package built by colcon into an install tree, as on a ROS machine (``install/fcn_perception``)."""
    import subprocess
    import sys

    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        pytest.fail("colcon is missing from the environment (requirements lock)")
    ws = tmp_path_factory.mktemp("ws")
    ignore = shutil.ignore_patterns(".venv*", ".git", "build", "install", "log", "runs", "demo_out", "__pycache__", ".*_cache")
    shutil.copytree(REPO, ws / "src" / "fcn_perception", ignore=ignore)
    # as containers and this project's CI build it: setuptools then skips byte-compiling (setup.py's InstallLib does not)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    res = subprocess.run([str(colcon), "--log-base", "log", "build", "--base-paths", "src"], cwd=ws, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return ws / "install" / "fcn_perception"
