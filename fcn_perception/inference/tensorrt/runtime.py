"""The TensorRT backend: engines from the engine cache (or one trusted explicitly), run on a CUDA stream.

Buffers are torch CUDA tensors, so preprocessing (resize, normalise) and the argmax stay on the GPU
and only the uint8 mask and confidence cross to the host. Nothing here runs without TensorRT and a
CUDA GPU; ``versions.available()`` says whether it can.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcn_perception.inference.base import Backend, Inference
from fcn_perception.inference.tensorrt.build import build_engine
from fcn_perception.inference.tensorrt.engine_cache import read_verified
from fcn_perception.inference.tensorrt.graph import onnx_graph_info
from fcn_perception.inference.tensorrt.versions import logger, unavailable_reason
from fcn_perception.model.config import CONFIDENCE_NAME, INPUT_NAME, LOGITS_NAME, MASK_NAME, read_onnx_config

INPUTS, OUTPUTS = (INPUT_NAME,), (LOGITS_NAME, MASK_NAME)
#: an engine of a graph exported before the confidence output serves masks without it
OPTIONAL_OUTPUTS = (CONFIDENCE_NAME,)


class TensorRTBackend(Backend):
    """Loads only engines this package built (manifest with build key and SHA-256), else builds one;
    an engine from elsewhere only when named as ``trusted_engine``. One engine per input size (the
    Segmenter keeps one backend per size)."""

    def __init__(
        self, onnx_path: str | Path, precision: str = "fp16", engine: str | Path | None = None, cache: str | Path = "", size: tuple[int, int] | None = None
    ) -> None:
        import tensorrt as trt
        import torch

        if reason := unavailable_reason():
            raise ValueError(f"backend tensorrt: {reason}")
        self.config = read_onnx_config(onnx_path)
        dims, _ = onnx_graph_info(onnx_path)
        #: a graph with a free height/width gets an engine per frame size from the same file
        self.resizable = any(d < 0 for d in dims[2:])
        if engine and not Path(engine).is_file():
            raise FileNotFoundError(f"trusted_engine not found: {engine}")
        engine_file = Path(engine).resolve() if engine else build_engine(onnx_path, precision, size, cache=cache)
        data = engine_file.read_bytes() if engine else read_verified(engine_file)
        self.engine = trt.Runtime(logger()).deserialize_cuda_engine(data)
        if self.engine is None:
            raise ValueError(f"{engine_file}: not a TensorRT engine for this TensorRT/GPU")
        self._check_io(trt, engine_file)
        if engine:  # an engine from elsewhere serves the shapes it was built for, and no other
            lo, _, hi = (tuple(d) for d in self.engine.get_tensor_profile_shape(INPUT_NAME, 0))
            want = size or tuple(self.config.input_size)
            if not (lo[2] <= want[1] <= hi[2] and lo[3] <= want[0] <= hi[3]):
                raise ValueError(f"trusted_engine {engine} serves {lo[3]}x{lo[2]} to {hi[3]}x{hi[2]}, not {want[0]}x{want[1]} frames")
        self.context = self.engine.create_execution_context()
        self.device = torch.device("cuda")
        self.stream = torch.cuda.Stream()
        self.torch = torch
        self.name = f"tensorrt-{precision}"
        self.size = size

    def _check_io(self, trt, engine_file: Path) -> None:
        """The engine's I/O tensors by mode, names and dtypes: an engine of another graph is refused here,
        not by a wrong answer or a crash in the first frame."""
        modes = {self.engine.get_tensor_name(i): self.engine.get_tensor_mode(self.engine.get_tensor_name(i)) for i in range(self.engine.num_io_tensors)}
        inputs = tuple(n for n, m in modes.items() if m == trt.TensorIOMode.INPUT)
        outputs = tuple(sorted(n for n, m in modes.items() if m == trt.TensorIOMode.OUTPUT))
        extra = tuple(n for n in outputs if n not in OUTPUTS)
        if inputs != INPUTS or not set(OUTPUTS) <= set(outputs) or not set(extra) <= set(OPTIONAL_OUTPUTS):
            raise ValueError(f"{engine_file}: engine inputs {inputs} / outputs {outputs}, expected {INPUTS} / {OUTPUTS} (+ {OPTIONAL_OUTPUTS})")
        self.outputs = OUTPUTS + extra
        want = {INPUT_NAME: trt.DataType.FLOAT, LOGITS_NAME: trt.DataType.FLOAT, MASK_NAME: trt.DataType.UINT8, CONFIDENCE_NAME: trt.DataType.UINT8}
        want = {n: d for n, d in want.items() if n in INPUTS + self.outputs}
        for name, dtype in want.items():
            if self.engine.get_tensor_dtype(name) != dtype:
                raise ValueError(f"{engine_file}: tensor {name} is {self.engine.get_tensor_dtype(name)}, expected {dtype}")
        shape = tuple(self.engine.get_tensor_shape(INPUT_NAME))
        if len(shape) != 4 or shape[1] not in (3, -1):
            raise ValueError(f"{engine_file}: input shape {shape}, expected (N, 3, H, W)")

    def infer(self, batch: np.ndarray) -> Inference:
        torch = self.torch
        with torch.cuda.stream(self.stream):
            x = torch.from_numpy(batch).cuda(non_blocking=True)
            mask, confidence = self.infer_device(x)
            return Inference(mask.cpu().numpy(), None if confidence is None else confidence.cpu().numpy())

    def infer_device(self, x):
        """(N, 3, H, W) float32 CUDA tensor -> (N, H, W) uint8 class ids and confidence (None from an
        engine without it) as CUDA tensors; they stay on the GPU."""
        torch = self.torch
        self.stream.wait_stream(torch.cuda.current_stream())  # x may come from work queued on another stream
        x = x.contiguous()
        if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise RuntimeError(f"TensorRT refused input shape {tuple(x.shape)} (outside the engine's profile)")
        shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.outputs}  # allocated as the context says
        if any(d < 0 for s in shapes.values() for d in s):
            raise RuntimeError(f"TensorRT left output shapes unresolved: {shapes}")
        tensors = {INPUT_NAME: x}
        for name in self.outputs:
            tensors[name] = torch.empty(shapes[name], device="cuda", dtype=torch.float32 if name == LOGITS_NAME else torch.uint8)
        for name, tensor in tensors.items():
            if not self.context.set_tensor_address(name, int(tensor.data_ptr())):
                raise RuntimeError(f"TensorRT refused the address of {name}")
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        self.stream.synchronize()
        return tensors[MASK_NAME], tensors.get(CONFIDENCE_NAME)
