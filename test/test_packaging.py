"""The package as ROS 2 installs it: colcon build, the launch file, the parameter YAML, package.xml."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from fcn_perception.inference.model_store import default_model_path
from fcn_perception.params.node_config import NodeConfig, load_params_yaml
from fcn_perception.params.table import PARAMS
from fcn_perception.ros.outputs import OUTPUTS

REPO = Path(__file__).resolve().parents[1]


def test_colcon_build_installs_what_ros_expects(colcon_install):
    inst = colcon_install
    for exe in ("fcn_perception_node", "fcn-perception"):
        assert os.access(inst / "lib" / "fcn_perception" / exe, os.X_OK), exe
    share = inst / "share" / "fcn_perception"
    for f in ("package.xml", "launch/fcn_perception.launch.py", "config/fcn_perception.yaml", "config/fastdds_discovery.xml"):
        assert (share / f).is_file(), f
    assert (inst / "share" / "ament_index" / "resource_index" / "packages" / "fcn_perception").is_file()
    site = next((inst / "lib").glob("python3*/site-packages"))
    for kind in ("pt", "onnx", "int8"):
        assert (site / "fcn_perception" / "models" / default_model_path(kind).name).is_file(), kind
    assert (site / "fcn_perception" / "ros" / "fastdds_node.xml").is_file()  # the node's own DDS profile
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
    with pytest.raises(ValueError, match=r"fusion_cameras: \['/cam_x/image_raw'\] not in image_topics"):
        NodeConfig.from_dict({**base, "fusion_cameras": ["/cam_x/image_raw"]})
    assert NodeConfig.from_dict({**base, "fusion_cameras": base["image_topics"]}).fusion_cameras == base["image_topics"]


def test_inference_streams_default_to_one_per_camera_up_to_the_frame_workers():
    base = load_params_yaml(REPO / "config" / "fcn_perception.yaml")
    two = ["/cam_a/image_raw/compressed", "/cam_b/image_raw/compressed"]
    assert NodeConfig.from_dict(base).segmenter().streams == 1  # one camera: one frame at a time, on every thread
    assert NodeConfig.from_dict({**base, "image_topics": two}).segmenter().streams == 2
    assert NodeConfig.from_dict({**base, "image_topics": two, "worker_threads": 1}).segmenter().streams == 1
    assert NodeConfig.from_dict({**base, "image_topics": two, "inference_streams": 1}).segmenter().streams == 1
    assert NodeConfig.from_dict({**base, "inference_streams": 3}).segmenter().streams == 3
    assert yaml.safe_load((REPO / "config" / "train_camvid.yaml").read_text())["model"]["variant"] == "fcn8s"


#: Imported module -> rosdep key (None: not in rosdep, installed from requirements/ and named in package.xml's comment).
ROSDEP = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "lifecycle_msgs": "lifecycle_msgs",
    "ament_index_python": "ament_index_python",
    "sensor_msgs": "sensor_msgs",
    "std_msgs": "std_msgs",
    "geometry_msgs": "geometry_msgs",
    "diagnostic_msgs": "diagnostic_msgs",
    "nav_msgs": "nav_msgs",
    "tf2_ros": "tf2_ros_py",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "cv_bridge": "cv_bridge",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "torch": "python3-torch",
    "yaml": "python3-yaml",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "zstandard": "python3-zstandard",
    "pytest": "python3-pytest",
    "hypothesis": "python3-hypothesis",
    **dict.fromkeys(("onnx", "onnxruntime", "openvino", "albumentations", "rosbags", "mcap", "simplejpeg", "tensorrt", "torchvision", "ray"), None),
}
# messages looked up by type name (ros/messages.py, bags/live_bag.py): not visible as imports
BY_NAME = ("std_msgs", "nav_msgs", "visualization_msgs", "tf2_msgs")


def _imports(paths):
    import ast

    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"fcn_perception", "__future__"}


def test_package_xml_lists_every_ros_package_the_code_imports():
    root = ET.parse(REPO / "package.xml").getroot()
    exec_deps = {e.text for e in root.findall("exec_depend")}
    test_deps = {e.text for e in root.findall("test_depend")} | exec_deps
    runtime = _imports([*(REPO / "fcn_perception").rglob("*.py"), *(REPO / "launch").glob("*.py")])
    tests = _imports((REPO / "test").glob("*.py")) - runtime
    unknown = sorted((runtime | tests) - set(ROSDEP))
    assert not unknown, f"imports with no rosdep decision in this test: {unknown}"
    missing = sorted(ROSDEP[m] for m in runtime if ROSDEP[m] and ROSDEP[m] not in exec_deps)
    missing += sorted(ROSDEP[m] for m in tests if ROSDEP[m] and ROSDEP[m] not in test_deps)
    missing += [m for m in BY_NAME if m not in exec_deps]
    assert not missing, f"package.xml lacks {missing}"
    comment = (REPO / "package.xml").read_text()
    assert all(m in comment for m, key in ROSDEP.items() if key is None and m in runtime and m != "torchvision"), "list pip-only imports in package.xml"


def test_the_installed_package_is_byte_compiled(colcon_install):
    """Every module colcon installs has its byte code beside it, also where PYTHONDONTWRITEBYTECODE
    is set (the fixture builds so): otherwise each start of the node compiles the package again."""
    import importlib.util

    site = next((colcon_install / "lib").glob("python3*/site-packages"))
    sources = sorted((site / "fcn_perception").rglob("*.py"))
    missing = [str(f.relative_to(site)) for f in sources if not Path(importlib.util.cache_from_source(str(f))).is_file()]
    assert sources and not missing, missing[:5]


@pytest.mark.parametrize("backend", ["auto", "onnxruntime"])
def test_installed_node_on_a_cpu_runtime_never_loads_pytorch(colcon_install, ros_node, tmp_path, monkeypatch, backend):
    """The lean runtime, checked from outside the process: the colcon-installed node serves masks from
    the shipped ONNX model with no libtorch mapped (start-up time and memory: BENCHMARKS.md, not here);
    on this CPU, auto means OpenVINO, and ONNX Runtime is one parameter away."""
    from fcn_perception.tools.load import run_startup

    site = next((colcon_install / "lib").glob("python3*/site-packages"))
    monkeypatch.setenv("PYTHONPATH", str(site))
    exe = str(colcon_install / "lib" / "fcn_perception" / "fcn_perception_node")
    res = run_startup(frames=5, ros=ros_node, log=tmp_path / "node.log", executable=exe, extra=("-p", f"backend:={backend}"))
    runtime = "openvino_loaded" if backend == "auto" else "onnxruntime_loaded"
    assert res["node_exit_code"] == 0 and res[runtime], res
    assert 0 < res["discovered_s"] <= res["first_mask_s"], res  # discovery told apart from start-up
    assert not res["libtorch_loaded"], (tmp_path / "node.log").read_text()


def test_core_layers_import_no_ros_and_the_runtime_no_training_code():
    """Import rules of the layout (README, Architecture), checked in fresh interpreters."""
    code = (
        "import sys, importlib; importlib.import_module(sys.argv[1]); "
        "bad = [m for m in sys.argv[2:] if m in sys.modules]; print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    rules = {
        # the core: no ROS at all
        **dict.fromkeys(
            ("fcn_perception.scene.pipeline", "fcn_perception.inference.segmenter", "fcn_perception.training.train", "fcn_perception.model.fcn"),
            ("rclpy",),
        ),
        # the node and the ONNX Runtime path: no torch, albumentations or training code
        "fcn_perception.ros.node": ("torch", "albumentations", "fcn_perception.training.train", "fcn_perception.model.fcn"),
        "fcn_perception.bags.replay": ("torch", "albumentations", "fcn_perception.training.train"),
    }
    for module, forbidden in rules.items():
        res = subprocess.run([sys.executable, "-c", code, module, *forbidden], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert res.returncode == 0, f"{module} imports {res.stdout.strip() or res.stderr[-500:]}"


def test_a_start_imports_neither_openvinos_converter_nor_every_ros_release_s_message_types():
    """Two imports a start never uses, in a fresh interpreter: OpenVINO's model converter, which its
    package imports as it loads (0.18 s), and rosbags' message stores of every ROS 2 release (0.2 s),
    made on first use; the node makes them while its model compiles (BENCHMARKS.md, 2026-12-07,
    sixteenth sitting). The converter is still importable by name afterwards."""
    code = (
        "import sys, fcn_perception.ros.node; from fcn_perception.inference.openvino_backend import core; core(); "
        "print([m for m in ('openvino.tools.ovc', 'rosbags.typesys.stores.ros2_jazzy') if m in sys.modules]); "
        "from openvino.tools.ovc import convert_model; from fcn_perception.ros.cdr import typestore; "
        "print('sensor_msgs/msg/Image' in typestore().types)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert res.returncode == 0, res.stderr[-1000:]
    assert res.stdout.split() == ["[]", "True"], res.stdout


def test_node_config_fields_are_the_parameter_table():
    """NodeConfig's fields are made from the table (declared type, default): nothing to keep equal by
    hand. A default that is not of its declared type is refused where the table is written."""
    from dataclasses import fields

    from fcn_perception.params.table import PY_TYPES, ParamSpec

    got = {f.name: f for f in fields(NodeConfig)}
    assert list(got) == [p.name for p in PARAMS]
    for spec in PARAMS:
        assert (got[spec.name].type, got[spec.name].default_factory()) == (PY_TYPES[spec.type], spec.default), spec.name
    with pytest.raises(TypeError, match=r"default 1\.5 is not a int"):
        ParamSpec("threads", "int", 1.5, "a float default for an int")
    with pytest.raises(TypeError, match="type 'integer' is not one of"):
        ParamSpec("threads", "integer", 1, "an unknown type")
    cfg = NodeConfig.from_dict({"camera_pose": (0, 0, 1.5, 0, 0, 0)})
    assert cfg.camera_pose == [0, 0, 1.5, 0, 0, 0] and isinstance(cfg.threads, int)


@pytest.mark.parametrize("profile", [REPO / "config" / "fastdds_discovery.xml", REPO / "fcn_perception" / "ros" / "fastdds_node.xml"])
def test_the_shipped_fast_dds_profiles_are_read_without_an_error(profile):
    """README's discovery fix and the node's own transports: Fast DDS only logs a profile it cannot
    read and goes on with its defaults, so the log is what tells."""
    env = dict(os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(profile), FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    code = "import rclpy; rclpy.init(); rclpy.create_node('profile_check').destroy_node(); rclpy.shutdown(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "error" not in (out.stdout + out.stderr).lower(), out.stderr
