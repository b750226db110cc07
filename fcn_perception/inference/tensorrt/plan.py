"""How one engine is built — profile and precision route per TensorRT major — decided before
TensorRT is touched, so the logic is tested without a GPU and a cache hit parses nothing.

TensorRT 10 builds "weakly typed" networks, where builder flags (FP16, INT8 with a calibrator on real
frames) let it choose lower precision; TensorRT 11 removed those flags and builds every network
strongly typed, so the precision is the graph's own: fp32 from the fp32 export, fp16 from an fp16
export (made from the checkpoint), int8 from a Q/DQ graph TensorRT parses (``quantize --symmetric``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcn_perception.inference.tensorrt.graph import check_parsable, onnx_graph_info
from fcn_perception.inference.tensorrt.versions import strongly_typed
from fcn_perception.model.config import INPUT_NAME

PRECISIONS = ("fp32", "fp16", "int8")
#: TensorRT 10's BuilderFlag names per precision (weak typing); 11 has neither
WEAK_TYPING_FLAGS = {"fp32": [], "fp16": ["FP16"], "int8": ["FP16", "INT8"]}


@dataclass
class BuildPlan:
    shapes: dict[str, tuple]  # input -> (min, opt, max) shapes of the optimisation profile
    flags: list[str] = field(default_factory=list)  # TensorRT 10 BuilderFlag names (FP16, INT8)
    calibrate: bool = False  # TensorRT 10 INT8 from an fp32 graph: calibration frames or an earlier engine
    strongly_typed: bool = False

    @property
    def input_shape(self) -> tuple:
        """The one shape this engine serves (min = opt = max): what calibration runs at."""
        return self.shapes[INPUT_NAME][1]


def _profile(onnx_path: Path | str, dims: list[int], size: tuple[int, int] | None) -> dict[str, tuple]:
    """A fixed graph's own shape; a free height/width set to the frame ``size``."""
    if len(dims) != 4:
        raise ValueError(f"{onnx_path}: input {INPUT_NAME} has {len(dims)} dims, expected (N, 3, H, W)")
    if any(d < 0 for d in dims[2:]):
        if size is None:
            raise ValueError(f"{onnx_path} has a free height/width: the engine needs the frame size it is built for")
        dims = [dims[0], dims[1], size[1], size[0]]
    elif size is not None and tuple(dims[2:][::-1]) != tuple(size):
        raise ValueError(f"{onnx_path} is fixed to {dims[3]}x{dims[2]}, not {size[0]}x{size[1]}")
    shape = (1 if dims[0] < 0 else dims[0], 3, dims[2], dims[3])
    return {INPUT_NAME: (shape, shape, shape)}


def build_plan(onnx_path: str | Path, precision: str, size: tuple[int, int] | None, major: int) -> BuildPlan:
    """The profile and precision route for this TensorRT major; a clear ValueError where the graph
    cannot give the precision asked for, or TensorRT's parser would refuse it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    dims, kind = onnx_graph_info(onnx_path)
    plan = BuildPlan(_profile(onnx_path, dims, size))
    if kind == "qdq-other":
        # raises with the parser's reasons (ONNX Runtime's asymmetric uint8, INT32 biases, ...)
        check_parsable(onnx_path, "quantize --symmetric makes the INT8 graph TensorRT takes")
    if strongly_typed(major):  # TensorRT 11: the graph is the precision
        plan.strongly_typed = True
        want = {"fp32": "fp32", "fp16": "fp16", "int8": "qdq-int8"}[precision]
        if kind != want:
            how = {"fp16": "an fp16 export (the node makes one from a .pt checkpoint)", "qdq-int8": "a symmetric INT8 Q/DQ ONNX (quantize --symmetric)"}
            needs = how.get(want, "an fp32 graph")
            raise ValueError(f"TensorRT {major} builds strongly typed networks: precision {precision} needs {needs}, and {onnx_path} is {kind}")
        return plan
    if kind == "qdq-int8":  # explicit quantization: the scales are in the graph, no calibrator
        plan.flags = list(WEAK_TYPING_FLAGS["int8"])
    else:
        plan.flags = list(WEAK_TYPING_FLAGS[precision])
        plan.calibrate = precision == "int8"
    return plan
