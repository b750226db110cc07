"""The package as ROS 2 installs it: colcon build, the launch file, the parameter YAML, package.xml."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from fcn_perception.inference.model_store import default_model_path
from fcn_perception.ros.messages import OUTPUTS
from fcn_perception.ros.node_config import PARAMS, NodeConfig, load_params_yaml

REPO = Path(__file__).resolve().parents[1]


def test_colcon_build_installs_what_ros_expects(colcon_install):
    inst = colcon_install
    for exe in ("fcn_perception_node", "fcn-perception"):
        assert os.access(inst / "lib" / "fcn_perception" / exe, os.X_OK), exe
    share = inst / "share" / "fcn_perception"
    for f in ("package.xml", "launch/fcn_perception.launch.py", "config/fcn_perception.yaml"):
        assert (share / f).is_file(), f
    assert (inst / "share" / "ament_index" / "resource_index" / "packages" / "fcn_perception").is_file()
    site = next((inst / "lib").glob("python3*/site-packages"))
    for kind in ("pt", "onnx", "int8"):
        assert (site / "fcn_perception" / "models" / default_model_path(kind).name).is_file(), kind
    assert list((site / "fcn_perception" / "sample").rglob("*.mcap"))
    # the installed executables run from the install tree alone
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([str(inst / "lib" / "fcn_perception" / "fcn-perception"), "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "replay" in out.stdout


def test_yaml_holds_every_parameter_with_its_default():
    params = load_params_yaml(REPO / "config" / "fcn_perception.yaml")
    with_default = [p for p in PARAMS if p.default != []]  # camera_pose: unset by default, documented in a comment
    assert list(params) == [p.name for p in with_default]
    for p in with_default:
        assert params[p.name] == p.default, p.name
    NodeConfig.from_dict(params)


def test_readme_documents_every_parameter_and_output_topic():
    res = subprocess.run([sys.executable, str(REPO / "tools" / "readme_tables.py"), "--check"], capture_output=True, timeout=60)
    assert res.returncode == 0, "README.md's parameter table is stale: run tools/readme_tables.py"
    readme = (REPO / "README.md").read_text()
    for p in PARAMS:
        assert f"| `{p.name}` |" in readme, p.name
    for out in OUTPUTS.values():
        assert f"| `<camera>/{out.topic}` |" in readme, out.topic
    assert "| `<camera>/camera_info` |" in readme and "| `/diagnostics` |" in readme


def test_package_xml_is_format_3_with_the_runtime_dependencies():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "fcn_perception"
    deps = {e.text for e in root.findall("exec_depend")}
    for dep in (
        "rclpy",
        "sensor_msgs",
        "geometry_msgs",
        "std_msgs",
        "visualization_msgs",
        "nav_msgs",
        "diagnostic_msgs",
        "cv_bridge",
        "python3-numpy",
        "python3-opencv",
        "python3-torch",
    ):
        assert dep in deps, dep
    assert root.find("export/build_type").text == "ament_python"


def test_node_config_rejects_bad_values():
    base = load_params_yaml(REPO / "config" / "fcn_perception.yaml")
    for bad in ({"threads": -1}, {"backend": "cuda"}, {"overlay_alpha": 2.0}, {"image_topics": []}, {"input_width": 320}, {"qos_depth": "5"}):
        with pytest.raises(ValueError):
            NodeConfig.from_dict({**base, **bad})
    assert yaml.safe_load((REPO / "config" / "train_camvid.yaml").read_text())["model"]["variant"] == "fcn8s"
