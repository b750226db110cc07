"""OpenVINO on the CPU: the runtime made for Intel CPUs (AVX-512 VNNI, AMX bf16/int8), reading the
shipped ``.onnx`` and ``.int8.onnx`` as they are.

One compiled model per input size (a static shape compiles to faster kernels than a dynamic one; the
Segmenter keeps one backend per size). Compiled blobs are cached by OpenVINO's own model cache
(``CACHE_DIR``), which keys each blob by the model's hash and the compile settings, and is placed
only inside this package's cache directory, as TensorRT engines are: nothing is loaded from
elsewhere.
"""

from __future__ import annotations

import importlib
import os
import queue
import sys
import threading
from pathlib import Path

import numpy as np

from fcn_perception import heap
from fcn_perception.inference.base import Backend, Inference, SizeFor, load_yields
from fcn_perception.inference.model_store import cache_dir, cache_file
from fcn_perception.inference.openvino_clockwork import clockwork, no_coarse
from fcn_perception.inference.stencil_head import StencilHead, head_for
from fcn_perception.model.config import CONFIDENCE_NAME, INPUT_NAME, MASK_NAME, config_from_metadata

#: precision -> OpenVINO's INFERENCE_PRECISION_HINT ("" = the device's default: bf16 on AMX CPUs)
HINTS = {"auto": "", "int8": "", "fp32": "f32", "bf16": "bf16"}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


_CORE = None
_IMPORT_LOCK = threading.Lock()


def runtime():
    """The ``openvino`` module, imported without its model-conversion API. OpenVINO's package imports
    ``openvino.tools.ovc`` as it loads (argparse, its telemetry, urllib and http.client) and goes on
    without it where that import fails; the runtime never converts a model, and the import was 0.18 s
    of every node start on a 2-core EPYC (BENCHMARKS.md, 2026-12-07, sixteenth sitting). Python fails
    an import whose module is None in ``sys.modules``; the entry is gone again afterwards, so
    ``openvino.tools.ovc`` stays importable by name."""
    with _IMPORT_LOCK:
        if "openvino" in sys.modules:
            return sys.modules["openvino"]
        blocked = "openvino.tools.ovc" not in sys.modules
        if blocked:
            sys.modules["openvino.tools.ovc"] = None
        try:
            return importlib.import_module("openvino")
        finally:
            if blocked and sys.modules.get("openvino.tools.ovc", False) is None:
                del sys.modules["openvino.tools.ovc"]


def core():
    """One OpenVINO Core for the process, kept for its lifetime. A Core per backend would load and,
    when the last is freed, unload the CPU plugin again; after such an unload the test process was
    killed by the kernel (SIGSEGV, si_code SI_KERNEL) at a later, unrelated point — seen four times
    in the suite, never with the Core kept."""
    global _CORE
    if _CORE is None:
        _CORE = runtime().Core()
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


def _final_upsampling(model, size: tuple[int, int]):
    """The FCN's last transposed convolution, where the graph is one: at the input's ``size``
    (w, h), one constant kernel per class, the shape :func:`head_for` takes. Its input (the class
    scores at 1/F) and a :class:`StencilHead` with its kernel, or None for any other graph."""
    for op in model.get_ops():
        if op.get_type_name() != "GroupConvolutionBackpropData":
            continue
        shape, a = op.get_output_partial_shape(0), op.get_attributes()
        f = a["strides"][0]
        if shape.is_dynamic or not all(n <= d < n + f for d, n in zip(shape.to_shape()[2:], (size[1], size[0]), strict=True)):
            continue
        weights = op.input_value(1).get_node()
        while weights.get_type_name() in ("Reshape", "Convert"):
            weights = weights.input_value(0).get_node()
        if weights.get_type_name() != "Constant":
            continue
        kernel = np.asarray(weights.get_data(), np.float32)
        if kernel.size != shape[1].get_length() * (2 * f - 1) ** 2:
            continue
        kernel = kernel.reshape(-1, 2 * f - 1, 2 * f - 1)
        if head := head_for(kernel, a["strides"], a["pads_begin"], a["pads_end"], a["output_padding"], a["dilations"]):
            return op.input_value(0), head
    return None


def _normalise_in_graph(model, mean, std) -> object:
    """The model taking (1, H, W, 3) uint8 RGB: OpenVINO's own preprocessing converts, normalises as
    in training (``(x - 255 mean) / (255 std)``) and changes the layout inside the graph, where it
    joins the INT8 model's input quantisation. OpenCV's float blob took 0.5 ms a 640x360 frame on the
    host; inference took no longer for it, and the masks are the same (BENCHMARKS.md, 2026-12-06,
    later)."""
    from openvino import Layout, Type
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    image = ppp.input(0)  # the frame (the model as read: its one input)
    image.tensor().set_element_type(Type.u8).set_layout(Layout("NHWC"))
    image.model().set_layout(Layout("NCHW"))
    image.preprocess().convert_element_type(Type.f32).mean([255.0 * m for m in mean]).scale([255.0 * s for s in std])
    return ppp.build()


class _Compiled:
    """One compiled model and its idle requests, one per stream: a request is not reentrant, a
    thread takes one per frame."""

    def __init__(self, compiled, streams: int, head: StencilHead | None = None, size: tuple[int, int] = (0, 0)) -> None:
        self.compiled = compiled
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(streams):
            self._requests.put(compiled.create_infer_request())
        self.head, self._size = head, size
        #: the inputs beside the frame, for a frame that computes every layer (a clockwork graph's)
        self.rest = no_coarse(compiled) if len(compiled.inputs) == 3 else {}
        if head is not None:
            return
        self._mask = compiled.output(MASK_NAME)
        names = {n for o in compiled.outputs for n in o.get_names()}
        self._confidence = compiled.output(CONFIDENCE_NAME) if CONFIDENCE_NAME in names else None

    def run(self, x: np.ndarray) -> Inference:
        if self.head is not None:
            return self._run_head(x)
        request = self._requests.get()  # the Segmenter admits at most ``streams`` callers: one is free
        try:
            # the input read in place and the outputs taken as views, then copied (two small uint8
            # images) before the request is free again: 0.35 ms less of the caller's CPU a frame at 640x360
            out = request.infer({0: x}, share_inputs=True, share_outputs=True)
            mask = out[self._mask].copy()
            confidence = None if self._confidence is None else out[self._confidence].copy()
        finally:
            self._requests.put(request)
        return Inference(mask, confidence)

    def _run_head(self, x: np.ndarray) -> Inference:
        """The graph up to the class scores at 1/F, then the head on this thread, the request free."""
        return Inference(*self.head.batch(self.outputs({0: x, **self.rest})[0], self._size))

    def outputs(self, inputs: dict) -> list[np.ndarray]:
        """Every output of the graph, copied before the request is free again."""
        request = self._requests.get()
        try:
            out = request.infer(inputs, share_inputs=True, share_outputs=True)
            return [out[k].copy() for k in range(len(self.compiled.outputs))]
        finally:
            self._requests.put(request)


class OpenVinoBackend(Backend):
    """A model compiled for one input size on the CPU; any other size compiles from the same file.

    ``size`` (w, h), or a :data:`SizeFor` asked once the model is read: the graph is prepared for its
    answer now, and prepared again if the settled answer (a camera's first frame, which the Segmenter
    may be waiting on meanwhile: ``SegmenterConfig.first_frame``) differs.

    It takes the uint8 frames (``rgb_input``) and normalises them in the graph; the float input of
    the contract (:meth:`infer`, for tools and tests) is compiled from the same file on first use.

    ``streams`` > 1 compiles for throughput: that many streams share the ``threads``, each inferring
    on its own request, so two cameras' frames run side by side on a thread each. On 2 cores that
    inferred 35-40 % more frames a second than one stream on both threads, each frame taking longer,
    and the node served 20-25 % more of two cameras' frames (BENCHMARKS.md, 2026-12-03): a network
    this small does not keep two threads busy on one frame.

    ``stencil_head``: where the graph ends in the FCN's final upsampling, it is compiled up to the
    class scores and :class:`StencilHead` upsamples them on the calling thread, in full only where a
    pixel's class is in doubt (3 ms less a 640x360 frame; its docstring has what it changes).

    ``reuse_coarse``: that graph is compiled with the stride-32 path behind a switch
    (``openvino_clockwork.py``), so :meth:`infer_rgb_reusing` can run a frame on an earlier frame's
    stride-32 scores (a quarter less time); :meth:`infer_rgb` computes every layer, as before.
    """

    resizable = True
    rgb_input = True
    name = "openvino-cpu"

    def __init__(
        self,
        onnx_path: str | Path,
        size: tuple[int, int] | SizeFor | None = None,
        threads: int = 0,
        precision: str = "auto",
        cache: str | Path = "",
        streams: int = 1,
        stencil_head: bool = True,
        reuse_coarse: bool = False,
    ) -> None:
        if precision not in HINTS:
            raise ValueError(f"OpenVINO on the CPU runs {', '.join(HINTS)}, not {precision!r}")
        if precision == "bf16" and not cpu_has_bf16():
            raise ValueError("precision bf16: this CPU has no bf16 support (OpenVINO reports no BF16 capability)")
        self._path = str(onnx_path)
        model = core().read_model(self._path)
        # the ONNX metadata (classes, normalisation, size) as OpenVINO's ONNX reader keeps it
        keys = ("classes", "mean", "std", "input_size", "backbone", "variant", "hidden")
        meta = {k: model.get_rt_info(["framework", k]).astype(str) for k in keys if model.has_rt_info(["framework", k])}
        self.config = config_from_metadata(meta)
        settle = (lambda: tuple(size(self.config, True))) if callable(size) else None
        self.size = tuple((size(self.config, False) if callable(size) else size) or self.config.input_size)
        threads = threads or (os.cpu_count() or 1)
        self.streams = max(1, min(streams, threads))
        self._props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if self.streams > 1:
            self._props.update(PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=self.streams)
        if HINTS[precision]:
            self._props["INFERENCE_PRECISION_HINT"] = HINTS[precision]
        blobs = cache_file(cache_dir(cache), "openvino", "blobs")
        blobs.mkdir(mode=0o700, exist_ok=True)
        self._props["CACHE_DIR"] = str(blobs)  # per compile: the one Core serves other caches too
        self.stencil_head = stencil_head
        self._reuse_coarse = reuse_coarse
        self._rgb = self._compile(model, rgb=True, settle=settle)
        self.reuses_coarse = bool(self._rgb.rest)
        self._float: _Compiled | None = None
        self._float_lock = threading.Lock()
        self.compiled = self._rgb.compiled
        self.precision = precision

    def _compile(self, model, rgb: bool, settle=None) -> _Compiled:
        """``settle``: asked once the graph is prepared for ``self.size``, the size to compile (a
        :data:`SizeFor` settled); another one is prepared again, from the file."""
        graph, switched, cut = self._prepare(model, rgb)
        if settle is not None and (size := settle()) != self.size:
            self.size = size
            graph, switched, cut = self._prepare(core().read_model(self._path), rgb)
        compiled = self._compile_switched(switched) if switched is not None else None
        if compiled is None:
            compiled = self._compile_model(graph)
        del model, graph, switched
        heap.return_freed()  # the reading and compiling temporaries: 15-25 MB of the node's memory
        return _Compiled(compiled, self.streams, None if cut is None else cut[1], self.size)

    def _prepare(self, model, rgb: bool):
        """The graph at ``self.size`` (its input, normalisation and outputs), the same with the
        stride-32 switch where it is asked for and can be made, and the stencil head's cut, if any."""
        w, h = self.size
        if rgb:  # normalised before the reshape, whose shape inference then covers it: 0.06-0.08 s less a start
            model = _normalise_in_graph(model, self.config.mean, self.config.std)
            model.reshape({INPUT_NAME: [1, h, w, 3]})
        else:
            model.reshape({INPUT_NAME: [1, 3, h, w]})
        cut = _final_upsampling(model, self.size) if self.stencil_head else None
        if cut is None:
            _keep_read_outputs(model)
            return model, None, None
        import openvino as ov

        model = ov.Model([cut[0]], model.get_parameters(), "scores")
        return model, self._switch(model) if rgb and self._reuse_coarse else None, cut

    def _compile_model(self, model):
        load_yields()  # the compile runs without Python's lock: work beside the load may go now
        return core().compile_model(model, "CPU", self._props)

    @staticmethod
    def _switch(scores_model):
        """The graph with the stride-32 path behind its switch; None where the graph has no such
        path, or this OpenVINO cannot make the switch (a model exported otherwise): then every frame
        computes every layer, as before."""
        try:
            return clockwork(scores_model)
        except Exception:
            return None

    def _compile_switched(self, switched):
        """None where the switch does not compile (a device's plugin without ``If``)."""
        try:
            return self._compile_model(switched)
        except Exception:
            return None

    def infer_rgb(self, frames: np.ndarray) -> Inference:
        return self._rgb.run(np.ascontiguousarray(frames, np.uint8))

    def infer_rgb_reusing(self, frames: np.ndarray, coarse: np.ndarray | None) -> tuple[Inference, np.ndarray | None]:
        x = np.ascontiguousarray(frames[:1], np.uint8)
        given = self._rgb.rest if coarse is None else {1: coarse, 2: np.array(True)}
        scores, used = self._rgb.outputs({0: x, **given})
        return Inference(*self._rgb.head.batch(scores, self.size)), used if coarse is None else None

    def infer(self, batch: np.ndarray) -> Inference:
        with self._float_lock:
            if self._float is None:
                self._float = self._compile(core().read_model(self._path), rgb=False)
        return self._float.run(np.ascontiguousarray(batch, np.float32))

    def execution_precision(self) -> str:
        """What OpenVINO chose for the float parts (bf16 on AMX CPUs by default)."""
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
