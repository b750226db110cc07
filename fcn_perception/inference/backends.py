"""The registry of inference backends: which ones exist, what ``auto`` means here, which shipped
model file and precisions each takes, and the one factory. The contract they all keep is in
``base``; each backend is imported only when chosen (ONNX Runtime serves an .onnx without PyTorch).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from fcn_perception.files import file_sha256
from fcn_perception.inference.base import Backend, SizeFor, load_yields
from fcn_perception.inference.model_store import DEFAULT_CPU_KIND, cache_dir, cache_file
from fcn_perception.model.config import EXPORT_VERSION

#: The one list of backend names: node parameter, CLI choices and replay overrides all read it.
BACKENDS = ("auto", "tensorrt", "openvino", "onnxruntime", "torch")
#: The one list of precision names (node parameter, CLI choices); what each backend runs is in PRECISIONS_BY_BACKEND.
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")
#: What each concrete backend runs (auto included), and the shipped model file each precision starts
#: from on the CPU: the one table of "which precision and model file go with which backend".
PRECISIONS_BY_BACKEND = {
    "tensorrt": ("auto", "fp32", "fp16", "int8"),
    "torch": ("auto", "fp32", "fp16"),
    "openvino": ("auto", "fp32", "bf16", "int8"),
    "onnxruntime": ("auto", "fp32", "int8"),
}
#: The backends that ask a function ``input_size`` once they have read the model (the others take the
#: trained size): OpenVINO compiles a graph per size, TensorRT builds an engine per size (minutes on a
#: vehicle), and the first can be the size cameras send: a checkpoint is exported at it, a free-size
#: .onnx gets its first profile for it; a fixed-size .onnx or a trusted engine runs its own size.
SIZE_AFTER_READING = ("openvino", "tensorrt")
CPU_MODEL_KIND = {"auto": DEFAULT_CPU_KIND, "fp32": "onnx", "bf16": "onnx", "int8": "int8"}
#: Device files an NVIDIA driver creates (desktop/server GPUs, Jetson's integrated GPU).
_GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu")


def gpu_present() -> bool:
    """Whether a CUDA GPU can exist here, asked of the driver's device files rather than of torch:
    ``auto`` on a machine without one must not pay PyTorch's import (a second, 600 MB runtime)."""
    return any(os.path.exists(p) for p in _GPU_DEVICE_FILES)


def concrete_backend(name: str, device: str = "auto") -> str:
    """The backend ``name`` means here — the one decision of what ``auto`` picks, for the model file
    (Segmenter) and the backend (create_backend) alike: TensorRT where it can run, else PyTorch on
    CUDA; on the CPU OpenVINO where it is installed (the faster CPU runtime, BENCHMARKS.md), else
    ONNX Runtime. Neither GPU runtime is imported where no GPU exists."""
    if name != "auto":
        return name
    if device != "cpu" and gpu_present():
        from fcn_perception.inference.tensorrt import versions

        if versions.available():
            return "tensorrt"
        if torch_cuda_available():
            return "torch"
    from fcn_perception.inference import openvino_backend

    return "openvino" if openvino_backend.available() else "onnxruntime"


def torch_cuda_available() -> bool:
    if not gpu_present() or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def default_kind(backend: str, device: str, precision: str) -> str:
    """Which shipped file serves a backend: the CPU runtimes read an .onnx (no PyTorch needed), the
    GPU backends start from the checkpoint (TensorRT builds its engine per input size from it)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    chosen = concrete_backend(backend, device)
    if precision not in PRECISIONS_BY_BACKEND[chosen]:
        runs = ", ".join(p for p in PRECISIONS_BY_BACKEND[chosen] if p != "auto")
        if precision == "fp16":
            raise ValueError(f"precision fp16 needs a GPU backend; {chosen} on the CPU runs {runs}")
        if precision == "bf16":
            raise ValueError(f"precision bf16 runs on OpenVINO (backend openvino); {chosen} runs {runs}")
        raise ValueError(f"precision {precision}: {chosen} runs {runs}")
    return "pt" if chosen in ("torch", "tensorrt") else CPU_MODEL_KIND[precision]


def onnx_for(model_path: Path, width: int, height: int, cache: str | Path = "", model=None, half: bool = False) -> Path:
    """The fixed-size ONNX export of a checkpoint, made once and cached by the checkpoint's hash and
    the export's version (``model``: the checkpoint already loaded, to avoid loading it twice;
    ``half``: float16 compute)."""
    key = file_sha256(model_path)[:16]
    name = f"{model_path.stem}-{key}-v{EXPORT_VERSION}-{width}x{height}{'-fp16' if half else ''}.onnx"
    out = cache_file(cache_dir(cache), "onnx", name)
    if not out.is_file():
        from fcn_perception.model.export import export_onnx
        from fcn_perception.model.fcn import load_model

        export_onnx(model or load_model(model_path), out, height=height, width=width, half=half)
    return out


def create_backend(
    name: str,
    model_path: Path,
    input_size: tuple[int, int] | SizeFor | None = None,
    threads: int = 0,
    device: str = "auto",
    precision: str = "auto",
    cache: str | Path = "",
    engine: str | Path = "",
    streams: int = 1,
    reuse_coarse: bool = False,
) -> Backend:
    """``input_size`` (w, h) fixes the ONNX graph's shape; ``None`` takes the size the model was trained for;
    a :data:`~fcn_perception.inference.base.SizeFor` is asked by OpenVINO once it has read the model, and
    settled where a checkpoint is exported (the others take the trained size for it).
    ``streams``: frames inferred at once on OpenVINO and ONNX Runtime (the threads split among them); GPU backends run one.

    auto: :func:`concrete_backend` (TensorRT or PyTorch on CUDA where a GPU is; OpenVINO, else ONNX
    Runtime, on the CPU).
    ``engine``: a TensorRT engine from outside the cache, trusted explicitly (tensorrt only).
    ``reuse_coarse``: OpenVINO compiles its graph with the stride-32 path behind a switch, so a frame
    can take an earlier frame's scores (Backend.infer_rgb_reusing); the others compute them every frame.
    """
    from fcn_perception.inference.tensorrt import versions

    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "tensorrt" and (reason := versions.unavailable_reason()):
        raise ValueError(f"backend tensorrt: {reason}")
    if model_path.suffix in (".engine", ".plan", ".trt"):
        raise ValueError(f"{model_path}: TensorRT engines are not models; give the .pt or .onnx it was built from, and the engine as trusted_engine")
    chosen = concrete_backend(name, device)
    use_trt = chosen == "tensorrt"
    if callable(input_size) and (chosen not in SIZE_AFTER_READING or (use_trt and engine)):
        input_size = None
    if callable(input_size) and use_trt and model_path.suffix == ".onnx":  # a free-size graph: its first profile
        from fcn_perception.inference.tensorrt.graph import onnx_graph_info
        from fcn_perception.model.config import read_onnx_config

        free = any(d < 0 for d in onnx_graph_info(model_path)[0][2:])
        input_size = tuple(input_size(read_onnx_config(model_path), True)) if free else None
    if chosen != "openvino":
        load_yields()  # only OpenVINO's load says when (base.LOAD_YIELDS): work beside the others goes at once
    trt_precision = "fp16" if precision == "auto" else precision  # TensorRT's default: fp16
    if engine and not use_trt:
        raise ValueError(f"trusted_engine {engine} needs the tensorrt backend ({versions.UNAVAILABLE_REASON}, and backend tensorrt or auto)")

    def trt(onnx: Path):
        from fcn_perception.inference.tensorrt.runtime import TensorRTBackend

        return TensorRTBackend(onnx, trt_precision, engine=engine or None, cache=cache, size=input_size)

    def cpu(onnx: Path):
        if chosen == "openvino":
            from fcn_perception.inference.openvino_backend import OpenVinoBackend

            return OpenVinoBackend(onnx, input_size, threads, precision, cache, streams, reuse_coarse=reuse_coarse)
        from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx, threads, streams=streams)

    if model_path.suffix == ".onnx":
        if name == "torch":
            raise ValueError("the torch backend needs a .pt checkpoint, not an .onnx file")
        return trt(model_path) if use_trt else cpu(model_path)
    if chosen == "torch":
        from fcn_perception.inference.torch_backend import TorchBackend
        from fcn_perception.model.fcn import load_model

        return TorchBackend(load_model(model_path), device=device, threads=threads)
    model = None
    if input_size is None or callable(input_size):  # a checkpoint: exported at the size asked once it is read
        from fcn_perception.model.fcn import load_model

        model = load_model(model_path)
        input_size = tuple(input_size(model.cfg, True) if callable(input_size) else model.cfg.input_size)
    # TensorRT 11 builds strongly typed networks: an fp16 engine comes from an fp16 graph
    half = use_trt and trt_precision == "fp16" and versions.strongly_typed()
    onnx_path = onnx_for(model_path, *input_size, cache=cache, model=model, half=half)
    return trt(onnx_path) if use_trt else cpu(onnx_path)
