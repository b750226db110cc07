"""The launch file under the real ``launch`` and ``launch_ros`` (Jazzy wheels from ../shared/wheels),
against a colcon install, exactly as ``ros2 launch fcn_perception fcn_perception.launch.py ARGS`` runs it.

launch_ros imports ``composition_interfaces.srv`` (for composable-node containers), which is not on
PyPI; the launch process gets a stand-in module defining ``LoadNode`` with nested ``Request`` and
``Response``, as ../shared/wheels/README.md suggests. Nothing here uses containers.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fcn_perception.waiting import wait_until

# as loud as missing data: CI has the wheels (tools/bootstrap.sh installs them from ../shared/wheels);
# launch_ros is only looked up here, as it imports composition_interfaces (a stand-in at launch time)
_MISSING = [m for m in ("launch", "launch_ros") if importlib.util.find_spec(m) is None]
if _MISSING:
    pytest.fail(f"{', '.join(_MISSING)} not installed: tools/bootstrap.sh installs them from ../shared/wheels", pytrace=False)

RUNNER = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import AnyLaunchDescriptionSource
args = [a.split(":=", 1) for a in sys.argv[2:]]
service = LaunchService(argv=sys.argv[2:])
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(AnyLaunchDescriptionSource(sys.argv[1]), launch_arguments=args)]))
sys.exit(service.run())
"""

STAND_IN = """class LoadNode:
    class Request:
        pass

    class Response:
        pass
"""


def _launch(install, tmp_path, args):
    stand_in = tmp_path / "stand_in" / "composition_interfaces"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    (stand_in / "srv.py").write_text(STAND_IN)
    site = next((install / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(install), PYTHONPATH=os.pathsep.join([str(site), str(stand_in.parent)]), PYTHONUNBUFFERED="1")
    launch_file = install / "share" / "fcn_perception" / "launch" / "fcn_perception.launch.py"
    log = open(tmp_path / "launch.log", "wb")  # noqa: SIM115 - closed by the caller's finally
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(launch_file), *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log


def _wait(predicate, timeout):
    return wait_until(predicate, timeout, 0.1)


@pytest.mark.parametrize(
    "args",
    [[], ["image_topics:=['/lfront/image_raw/compressed', '/lrear/image_raw']", "namespace:=perception"]],
    ids=["default", "multi_camera"],
)
def test_documented_launch_commands_serve_every_camera(colcon_install, ros_node, tmp_path, args):
    import cv2
    from sensor_msgs.msg import CompressedImage, Image

    from fcn_perception.bags.live_bag import Recorder

    topics = ["/camera_front/image_raw/compressed"] if not args else ["/lfront/image_raw/compressed", "/lrear/image_raw"]
    masks = {t: t.rsplit("/image_raw", 1)[0] + "/segmentation/mask" for t in topics}
    rec = Recorder(ros_node, {m: "sensor_msgs/msg/Image" for m in masks.values()})
    proc, log = _launch(colcon_install, tmp_path, args)
    pubs = {t: ros_node.create_publisher(CompressedImage if t.endswith("compressed") else Image, t, 10) for t in topics}
    try:
        subscribed = lambda: all(ros_node.count_subscribers(t) > 0 for t in topics)  # noqa: E731
        assert _wait(lambda: subscribed() or proc.poll() is not None, 90), (tmp_path / "launch.log").read_text()
        assert proc.poll() is None, (tmp_path / "launch.log").read_text()
        bgr = np.full((120, 160, 3), 100, np.uint8)
        for i in range(20):
            for t, pub in pubs.items():
                if t.endswith("compressed"):
                    msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", bgr)[1].tobytes())
                else:
                    msg = Image(encoding="bgr8", width=160, height=120, step=480, data=bgr.tobytes())
                msg.header.stamp.sec, msg.header.frame_id = i + 1, "cam_optical_frame"
                pub.publish(msg)
            if all(rec.count(m) > 0 for m in masks.values()):
                break
            time.sleep(0.5)
        assert _wait(lambda: all(rec.count(m) > 0 for m in masks.values()), 30), (tmp_path / "launch.log").read_text()[-3000:]
        if args:  # other tests' nodes of the same name (namespace /) may still be in the DDS graph
            assert ("fcn_perception_node", "/perception") in ros_node.get_node_names_and_namespaces()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(30)
        log.close()
        for pub in pubs.values():
            ros_node.destroy_publisher(pub)
        for sub in rec.subs:
            ros_node.destroy_subscription(sub)
    text = (tmp_path / "launch.log").read_text()
    assert code == 0, text[-3000:]
    assert "Traceback" not in text and "Caught exception" not in text, text[-3000:]
