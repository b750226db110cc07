"""OpenVINO on the CPU: the runtime made for Intel CPUs (AVX-512 VNNI, AMX bf16/int8), reading the
shipped ``.onnx`` and ``.int8.onnx`` as they are.

One compiled model per input size (a static shape compiles to faster kernels than a dynamic one; the
Segmenter keeps one backend per size). Compiled blobs are cached by OpenVINO's own model cache
(``CACHE_DIR``), which keys each blob by the model's hash and the compile settings, and is placed
only inside this package's cache directory, as TensorRT engines are: nothing is loaded from
elsewhere.
"""

from __future__ import annotations

import os
import queue
from pathlib import Path

import numpy as np

from fcn_perception import heap
from fcn_perception.inference.base import Backend, Inference
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.model.config import CONFIDENCE_NAME, INPUT_NAME, MASK_NAME, config_from_metadata

#: precision -> OpenVINO's INFERENCE_PRECISION_HINT ("" = the device's default: bf16 on AMX CPUs)
HINTS = {"auto": "", "int8": "", "fp32": "f32", "bf16": "bf16"}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


_CORE = None


def core():
    """One OpenVINO Core for the process, kept for its lifetime. A Core per backend would load and,
    when the last is freed, unload the CPU plugin again; after such an unload the test process was
    killed by the kernel (SIGSEGV, si_code SI_KERNEL) at a later, unrelated point — seen four times
    in the suite, never with the Core kept."""
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


def cpu_has_bf16() -> bool:
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _keep_read_outputs(model) -> None:
    """Drop the graph outputs the backend never reads (the float logits: 12 channels at the input's
    size). As an output they were laid out planar and copied out per frame, 11 MB at 640x360;
    without it the 640x360 INT8 frame took 1-2 ms less on one thread (BENCHMARKS.md, 2026-12-06,
    later)."""
    for result in list(model.get_results()):
        if not result.input_value(0).get_names() & {MASK_NAME, CONFIDENCE_NAME}:
            model.remove_result(result)


class OpenVinoBackend(Backend):
    """A model compiled for one input size on the CPU; any other size compiles from the same file.

    ``streams`` > 1 compiles for throughput: that many streams share the ``threads``, each inferring
    on its own request, so two cameras' frames run side by side on a thread each. On 2 cores that
    inferred 35-40 % more frames a second than one stream on both threads, each frame taking longer,
    and the node served 20-25 % more of two cameras' frames (BENCHMARKS.md, 2026-12-03): a network
    this small does not keep two threads busy on one frame.
    """

    resizable = True
    name = "openvino-cpu"

    def __init__(
        self, onnx_path: str | Path, size: tuple[int, int] | None = None, threads: int = 0, precision: str = "auto", cache: str | Path = "", streams: int = 1
    ) -> None:
        if precision not in HINTS:
            raise ValueError(f"OpenVINO on the CPU runs {', '.join(HINTS)}, not {precision!r}")
        ov_core = core()
        if precision == "bf16" and not cpu_has_bf16():
            raise ValueError("precision bf16: this CPU has no bf16 support (OpenVINO reports no BF16 capability)")
        model = ov_core.read_model(str(onnx_path))
        # the ONNX metadata (classes, normalisation, size) as OpenVINO's ONNX reader keeps it
        keys = ("classes", "mean", "std", "input_size", "backbone", "variant")
        meta = {k: model.get_rt_info(["framework", k]).astype(str) for k in keys if model.has_rt_info(["framework", k])}
        self.config = config_from_metadata(meta)
        w, h = size or tuple(self.config.input_size)
        model.reshape({INPUT_NAME: [1, 3, h, w]})
        _keep_read_outputs(model)
        threads = threads or (os.cpu_count() or 1)
        streams = max(1, min(streams, threads))
        props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if streams > 1:
            props.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
        if HINTS[precision]:
            props["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        blobs = cache_file(cache_dir(cache), "openvino", "blobs")
        blobs.mkdir(mode=0o700, exist_ok=True)
        props["CACHE_DIR"] = str(blobs)  # per compile: the one Core serves other caches too
        self.compiled = ov_core.compile_model(model, "CPU", props)
        del model
        heap.return_freed()  # the reading and compiling temporaries: 15-25 MB of the node's memory
        self.streams = streams
        #: idle requests, one per stream: a request is not reentrant, a thread takes one per frame
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(streams):
            self._requests.put(self.compiled.create_infer_request())
        self._mask = self.compiled.output(MASK_NAME)
        names = {n for o in self.compiled.outputs for n in o.get_names()}
        self._confidence = self.compiled.output(CONFIDENCE_NAME) if CONFIDENCE_NAME in names else None
        self.size = (w, h)
        self.precision = precision

    def infer(self, batch: np.ndarray) -> Inference:
        request = self._requests.get()  # the Segmenter admits at most ``streams`` callers: one is free
        try:
            # the input read in place and the outputs taken as views, then copied (two small uint8
            # images) before the request is free again: 0.35 ms less of the caller's CPU a frame at 640x360
            out = request.infer({INPUT_NAME: np.ascontiguousarray(batch, np.float32)}, share_inputs=True, share_outputs=True)
            mask = out[self._mask].copy()
            confidence = None if self._confidence is None else out[self._confidence].copy()
        finally:
            self._requests.put(request)
        return Inference(mask, confidence)

    def execution_precision(self) -> str:
        """What OpenVINO chose for the float parts (bf16 on AMX CPUs by default)."""
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
