"""The names TensorRT's Python bindings expose — every class, method and enum — read from the real
``tensorrt-cu12-bindings`` wheels, on a machine without TensorRT's libraries or a GPU.

The bindings module needs only ten C entry points of TensorRT's libraries (``createInferBuilder_INTERNAL``
and the like) to load; registering its classes calls none of them. Stub libraries of the same
sonames whose every function aborts let the real module load in a child process, which prints its
name tree as JSON; the caller's process never imports it. ``tools/bootstrap.sh`` downloads the
pinned wheels (``requirements/tensorrt-bindings.txt``) into ``$VENV/tensorrt-bindings``.

    python tools/tensorrt_names.py WHEEL OUT.json
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ENTRY_POINTS = (
    "createInferBuilder_INTERNAL",
    "createInferRefitter_INTERNAL",
    "createInferRuntime_INTERNAL",
    "createNvOnnxParserRefitter_INTERNAL",
    "createNvOnnxParser_INTERNAL",
    "getBuilderPluginRegistry",
    "getNvOnnxParserVersion",
    "getPluginRegistry",
    "initLibNvInferPlugins",
)
LIBRARIES = ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin")
_DUMP = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("tensorrt", sys.argv[1])
trt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(trt)
tree = {name: sorted(n for n in dir(getattr(trt, name)) if not n.startswith("__")) for name in dir(trt) if not name.startswith("_")}
json.dump(tree, sys.stdout)
"""


def wheel_version(wheel: Path) -> str:
    match = re.match(r"tensorrt_cu\d+_bindings-([0-9.]+?)(?:\.post\d+)?-", wheel.name)
    if not match:
        raise ValueError(f"{wheel.name}: not a tensorrt-cu*-bindings wheel")
    return match.group(1)


def _stubs(folder: Path, major: str) -> None:
    source = folder / "stub.c"
    source.write_text("#include <stdlib.h>\n" + "".join(f"void *{name}(void) {{ abort(); }}\n" for name in ENTRY_POINTS))
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc) to build the stub libraries")
    for lib in LIBRARIES:
        subprocess.run([cc, "-shared", "-fPIC", f"-Wl,-soname,{lib}.so.{major}", "-o", str(folder / f"{lib}.so.{major}"), str(source)], check=True)


def name_tree(wheel: str | Path) -> dict:
    """{"version": "10.13.3.9", "names": {top-level name: [its attributes]}} of one bindings wheel."""
    wheel = Path(wheel)
    version = wheel_version(wheel)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract("tensorrt_bindings/tensorrt.so", folder)
        _stubs(folder, version.split(".")[0])
        env = {**os.environ, "LD_LIBRARY_PATH": str(folder)}
        done = subprocess.run(
            [sys.executable, "-c", _DUMP, str(folder / "tensorrt_bindings" / "tensorrt.so")], env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"loading {wheel.name} failed: {done.stderr.strip()[-500:]}")
    names = json.loads(done.stdout)
    names["__version__"] = []  # set by the package's __init__.py, beside the compiled module
    return {"version": version, "names": names}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    try:
        tree = name_tree(argv[0])
    except (OSError, ValueError, RuntimeError, zipfile.BadZipFile, KeyError) as exc:
        print(f"tensorrt_names: {exc}", file=sys.stderr)
        return 1
    Path(argv[1]).write_text(json.dumps(tree))
    print(f"{argv[1]}: TensorRT {tree['version']}, {len(tree['names'])} names")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
