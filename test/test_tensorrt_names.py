"""Every TensorRT name the backend uses exists in each TensorRT major whose path uses it, held against
the real bindings of 10.13 and 11.4 (tools/tensorrt_names.py reads them; bootstrap downloads the
pinned wheels, a test never fetches one).

A name is ``trt.X`` / ``trt.X.Y`` in the code, a method called on a TensorRT object the code holds
(``builder.create_network``, ``self.context.set_input_shape``), a method a calibrator overrides, or
a BuilderFlag name the build plan asks for. Functions listed in ``build.ONLY_ON`` run on that major
only; every other function must work on both."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import shutil
import sys
from pathlib import Path

import pytest

from fcn_perception.inference.tensorrt import build, plan, runtime, versions

ROOT = Path(__file__).resolve().parents[1]
_LINES = (ROOT / "requirements/tensorrt-bindings.txt").read_text().splitlines()
PINNED = {line.split()[0].split("==")[1]: line.split()[1] for line in _LINES if line and not line.startswith("#")}
MODULES = (build, runtime, versions)
#: the TensorRT objects the code holds, by the name it holds them under
HELD = {
    "builder": "Builder",
    "network": "INetworkDefinition",
    "parser": "OnnxParser",
    "config": "IBuilderConfig",
    "profile": "IOptimizationProfile",
    "timing": "ITimingCache",
    "self.engine": "ICudaEngine",
    "self.context": "IExecutionContext",
}


def _load_tools():
    spec = importlib.util.spec_from_file_location("tensorrt_names", ROOT / "tools" / "tensorrt_names.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def trees(tmp_path_factory) -> dict[int, dict]:
    """major -> that major's name tree, from the pinned wheels in the venv."""
    folder = Path(sys.prefix) / "tensorrt-bindings"
    wheels = {v: next(iter(folder.glob(f"*-{v}-*.whl")), None) for v in PINNED}
    if not all(wheels.values()) or shutil.which("cc") is None:
        pytest.skip(f"TensorRT bindings wheels {sorted(PINNED)} not in {folder} (tools/bootstrap.sh downloads them) or no C compiler")
    tools = _load_tools()
    out = {}
    for version, wheel in wheels.items():
        cached = tmp_path_factory.getbasetemp() / f"trt-{version}.json"
        if not cached.is_file():
            cached.write_text(json.dumps(tools.name_tree(wheel)))
        out[int(version.split(".")[0])] = json.loads(cached.read_text())["names"]
    assert set(out) == set(versions.TRT_MAJORS)
    return out


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def names_used(source: str, only_on: dict[str, tuple[int, ...]]) -> list[tuple[str, tuple[int, ...], int]]:
    """(TensorRT name as "Class.member" or "name", the majors whose path uses it, line) in ``source``."""
    out = []

    def visit(node: ast.AST, majors: tuple[int, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = only_on.get(getattr(child, "name", ""), majors) if isinstance(child, ast.FunctionDef | ast.ClassDef) else majors
            if isinstance(child, ast.ClassDef):
                bases = [_dotted(b) for b in child.bases if _dotted(b).startswith("trt.")]
                for base in bases:  # a subclass of a TensorRT class overrides its methods
                    out.extend((f"{base[4:]}.{f.name}", inner, f.lineno) for f in child.body if isinstance(f, ast.FunctionDef) and f.name != "__init__")
            if isinstance(child, ast.Attribute):
                dotted = _dotted(child)
                parts = dotted.split(".")
                if parts[0] == "trt" and len(parts) >= 2:  # trt.__version__.split: the module's own attribute
                    out.append((".".join(parts[1:2] if parts[1].startswith("__") else parts[1:3]), inner, child.lineno))
                    continue
                for held, cls in HELD.items():
                    if dotted.startswith(held + ".") and dotted.count(".") == held.count(".") + 1:
                        out.append((f"{cls}.{parts[-1]}", inner, child.lineno))
            visit(child, inner)

    visit(ast.parse(source), tuple(versions.TRT_MAJORS))
    return out


def missing(source: str, only_on: dict, trees: dict[int, dict]) -> list[str]:
    """The names ``source`` uses that a major on its path lacks."""
    out = []
    for name, majors, line in names_used(source, only_on):
        for major in majors:
            cls, _, member = name.partition(".")
            tree = trees[major]
            if cls not in tree or (member and member not in tree[cls]):
                out.append(f"line {line}: {name} is not in TensorRT {major}")
    return out


def test_every_name_the_backend_uses_exists_in_the_majors_whose_path_uses_it(trees):
    used = {m.__name__: names_used(inspect.getsource(m), build.ONLY_ON) for m in MODULES}
    assert len(used["fcn_perception.inference.tensorrt.build"]) > 20  # the walk finds the builder's names
    assert any(n == "IBuilderConfig.set_calibration_profile" and majors == (10,) for n, majors, _ in used["fcn_perception.inference.tensorrt.build"])
    for module in MODULES:
        assert missing(inspect.getsource(module), build.ONLY_ON, trees) == [], module.__name__


def test_a_planted_name_one_major_lacks_fails_on_that_majors_path(trees):
    source = inspect.getsource(build)
    planted = source.replace("    network = builder.create_network(0)\n", "    network = builder.create_network(0)\n    trt.BuilderFlag.INT8\n", 1)
    assert planted != source
    assert [m for m in missing(planted, build.ONLY_ON, trees) if "BuilderFlag.INT8 is not in TensorRT 11" in m]
    # the same name on the TensorRT 10 path alone is right
    assert missing(planted, {**build.ONLY_ON, "_parse": (10,)}, trees) == []
    # a calibrator is TensorRT 10's: declaring it for both majors fails on 11
    assert [m for m in missing(source, {"configure_weak_typing": (10,)}, trees) if "IInt8EntropyCalibrator2" in m and "TensorRT 11" in m]


@pytest.mark.parametrize("major", versions.TRT_MAJORS)
def test_the_builder_flags_the_plan_asks_for_exist_in_that_major(trees, major, tmp_path, monkeypatch):
    from fcn_perception.inference.backends import onnx_for
    from fcn_perception.inference.model_store import default_model_path

    fp32 = onnx_for(default_model_path(), 96, 64, cache=tmp_path)
    precisions = plan.PRECISIONS if major == 10 else ("fp32",)  # 11: fp16/int8 need their own graphs
    flags = {f for p in precisions for f in plan.build_plan(fp32, p, None, major).flags}
    assert flags <= set(trees[major]["BuilderFlag"]), flags - set(trees[major]["BuilderFlag"])
    if major == 11:  # planted: a plan that asks 11 for weak typing names flags 11 does not have
        monkeypatch.setattr(plan, "strongly_typed", lambda m: False)
        planted = set(plan.build_plan(fp32, "int8", None, 11).flags)
        assert planted - set(trees[11]["BuilderFlag"]) == {"FP16", "INT8"}
