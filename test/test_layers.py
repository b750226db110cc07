"""The README's arrows as a test: every module's imports (parsed, not executed) against its layer's rules.

README, "Layout and architecture":
    tools ─► bags ─► ros ─► params ─► scene ─► inference ─► model
    training ─► inference, model
The core (model, training, inference, scene) imports no ROS: no rclpy, cv_bridge, tf2, message
packages, ``ros/`` or ``bags/``, and no rosbags beyond its image conversions (``rosbags.image``).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PACKAGE = "fcn_perception"
#: the package's own layers each layer may import (package-root modules such as files.py and stats.py: all)
ALLOWED = {
    "model": {"model"},
    "inference": {"inference", "model"},
    "scene": {"scene", "inference", "model"},
    "training": {"training", "inference", "model"},
    "params": {"params", "scene", "inference", "model"},
    "ros": {"ros", "params", "scene", "inference", "model"},
    "bags": {"bags", "ros", "params", "scene", "inference", "model"},
    "tools": {"tools", "bags", "ros", "params", "scene", "inference", "model", "training", "studies"},
    "studies": {"studies", "training", "inference", "model"},
}
CORE = ("model", "training", "inference", "scene", "params")
ROS_MODULES = ("rclpy", "cv_bridge", "tf2_ros", "tf2_msgs", "launch", "launch_ros", "rosidl_runtime_py", "rcl_interfaces", "lifecycle_msgs")
ROS_SUFFIXES = ("_msgs", "_interfaces")


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file; relative ones resolved against ``module``."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names if name == PACKAGE]  # from fcn_perception import ros
    return out


def violations(root: Path) -> list[str]:
    """Every import that breaks the layering, as ``path:line: what``."""
    bad = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root)
        parts = rel.with_suffix("").parts
        layer = parts[1] if len(parts) > 2 else None  # None: a package-root module (files, stats, __main__)
        module = ".".join(parts)
        for line, name in _imports(path, module):
            top, *rest = name.split(".")
            where = f"{rel}:{line}"
            if top == PACKAGE and rest and layer is not None:
                target = rest[0]
                if target in ALLOWED and target not in ALLOWED[layer]:
                    bad.append(f"{where}: {layer}/ imports {target}/ ({name})")
            elif layer in CORE:
                if top in ROS_MODULES or top.endswith(ROS_SUFFIXES):
                    bad.append(f"{where}: the core ({layer}/) imports ROS ({name})")
                elif top == "rosbags" and not name.startswith("rosbags.image"):
                    bad.append(f"{where}: the core ({layer}/) imports rosbags beyond its image conversions ({name})")
    return bad


def test_the_tree_follows_the_readme_arrows():
    assert violations(REPO) == []


def test_a_planted_ros_import_in_the_core_or_an_upward_import_fails(tmp_path):
    """The checker sees what it guards: each planted line is found, with its file and line."""
    for rel, line, expected in (
        ("scene/planted.py", "import rclpy", "the core (scene/) imports ROS (rclpy)"),
        ("inference/planted.py", "from ..ros import topics", "inference/ imports ros/ (fcn_perception.ros)"),
        ("inference/planted2.py", "from fcn_perception.scene import pipeline", "inference/ imports scene/"),
        ("scene/planted3.py", "from cv_bridge import CvBridge", "imports ROS (cv_bridge)"),
        ("model/planted4.py", "from rosbags.typesys import Stores", "rosbags beyond its image conversions"),
        ("training/planted5.py", "from sensor_msgs.msg import Image", "imports ROS (sensor_msgs.msg)"),
    ):
        tree = tmp_path / rel.replace("/", "_")
        target = tree / PACKAGE / rel
        target.parent.mkdir(parents=True)
        (tree / PACKAGE / "__init__.py").write_text("")
        target.write_text(f'"""planted"""\n\n{line}\n')
        found = violations(tree)
        assert len(found) == 1 and expected in found[0] and found[0].startswith(f"{PACKAGE}/{rel}:3"), found
    allowed = tmp_path / "ok"
    (allowed / PACKAGE / "scene").mkdir(parents=True)
    (allowed / PACKAGE / "scene" / "fine.py").write_text("from rosbags.image import message_to_cvimage\nfrom ..inference import segmenter\n")
    assert violations(allowed) == []
