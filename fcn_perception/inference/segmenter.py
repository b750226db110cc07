"""The one inference pipeline (preprocess -> infer -> postprocess) that node, replay, eval and bench share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from fcn_perception import heap
from fcn_perception.inference import auto_precision
from fcn_perception.inference.auto_precision import Choice
from fcn_perception.inference.backends import SIZE_AFTER_READING, concrete_backend, create_backend, default_kind
from fcn_perception.inference.base import Inference, InferenceError
from fcn_perception.inference.coarse_reuse import CoarseScores
from fcn_perception.inference.mask_scale import MaskScale
from fcn_perception.inference.model_store import resolve_model
from fcn_perception.inference.paint import sharpen_lanes, sharpen_lanes_torch
from fcn_perception.inference.preprocess import inference_size, preprocess_rgb, resize_rgb
from fcn_perception.model.classes import palette_bgr
from fcn_perception.model.config import ModelConfig

#: ``auto``'s first-start measuring begins with this frame (a thread waiting for it from the start
#: delayed the node's first mask by 1.7 s on this machine: BENCHMARKS.md, 2026-12-02)
MEASURE_AFTER_FRAMES = 300


@dataclass
class SegmenterConfig:
    model: str = ""  # path of a .pt checkpoint or .onnx file; "" = the shipped default model
    backend: str = "auto"  # one of backends.BACKENDS
    input_width: int = 0  # 0 = the size the model was trained at
    input_height: int = 0
    threads: int = 0  # CPU threads for inference, 0 = all cores
    device: str = "auto"  # torch backend: auto | cpu | cuda
    cache_dir: str = ""  # derived files (ONNX, engines); "" = FCN_PERCEPTION_CACHE or the XDG cache
    engine: str = ""  # a TensorRT engine from outside the cache, trusted explicitly
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 | int8: auto = TensorRT fp16, on the CPU the shipped INT8
    device_preprocess: str = "auto"  # on | off | auto (= on when the backend runs on a GPU): resize/normalise/argmax there
    #: thin the model's LaneMarking to the paint the image shows (inference/paint.py::sharpen_lanes)
    sharpen_lanes: bool = True
    #: build the backend for a new frame size in a background thread, dropping that size's frames
    #: meanwhile (the node: a TensorRT build takes minutes); off = build in the caller (replay, eval)
    background_builds: bool = False
    #: frames inferred at once, from different threads (OpenVINO's throughput streams, ONNX
    #: Runtime's concurrent runs, sharing ``threads``; GPU backends run one); the node sets one per camera
    streams: int = 1
    #: a camera's frame may take the stride-32 class scores of its frame at most this much older (by
    #: stamp) instead of computing them (inference/coarse_reuse.py: what it saves and costs); 0 = never.
    #: Backends that cannot (all but OpenVINO) compute them every frame
    coarse_reuse_ms: float = 70.0
    #: ``first_frame(settled)``: (w, h) of a camera's first frame, or None; asked while the model loads,
    #: so the first backend is made for the size the cameras send (the node: ros/first_frame.py).
    #: ``settled`` False: what is known now; True: once the wait for it is over
    first_frame: Callable[[bool], tuple[int, int] | None] | None = None


def asks_first_frame(c: SegmenterConfig) -> bool:
    """Whether a Segmenter made from ``c`` asks ``c.first_frame`` as it loads: the size is not forced,
    and its backend makes its first graph once the model is read (``backends.SIZE_AFTER_READING``;
    not a trusted TensorRT engine, which serves the size it was built for)."""
    return not c.input_width and not c.engine and concrete_backend(c.backend, c.device) in SIZE_AFTER_READING


class _StreamGate:
    """At most ``n`` inferences at once — the backend's streams, a request each. ``all`` holds every
    one: auto's timing runs, which no frame may share the cores with."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._free = threading.Semaphore(n)
        self._whole = threading.Lock()  # one taker of all at a time: two could each hold half
        self.all = _AllStreams(self)

    def __enter__(self) -> None:
        self._free.acquire()

    def __exit__(self, *exc) -> None:
        self._free.release()


class _AllStreams:
    def __init__(self, gate: _StreamGate) -> None:
        self.gate = gate

    def __enter__(self) -> None:
        self.gate._whole.acquire()
        for _ in range(self.gate.n):
            self.gate._free.acquire()

    def __exit__(self, *exc) -> None:
        for _ in range(self.gate.n):
            self.gate._free.release()
        self.gate._whole.release()


class EngineBuilding(RuntimeError):
    """The backend for this frame's size is being built in the background: the frame is dropped
    (counted as such), not failed."""


@dataclass
class Segmentation:
    """Class ids and confidence at the size they were worked at (``work_*``): the network's, where it
    is smaller than the camera, else the camera's. ``mask`` and ``confidence`` are the camera-sized
    images, enlarged once on first use (``inference/mask_scale.py`` says why)."""

    work_mask: np.ndarray  # (h, w) uint8 class ids
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: (h, w) uint8 top-class probability (255 = 1.0); None from a model exported without the confidence output
    work_confidence: np.ndarray | None = None
    size: tuple[int, int] | None = None  # (w, h) of the camera; None: the work size
    _lifted: dict[str, np.ndarray | None] = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> MaskScale:
        return MaskScale.of(self.work_mask, self.size)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) uint8 class ids at the camera's resolution (nearest enlargement)."""
        if "mask" not in self._lifted:
            self._lifted["mask"] = self.scale.lift(self.work_mask)
        return self._lifted["mask"]

    @property
    def confidence(self) -> np.ndarray | None:
        """(H, W) uint8 confidence at the camera's resolution (bilinear), None without one."""
        if "confidence" not in self._lifted:
            self._lifted["confidence"] = self.scale.lift(self.work_confidence, linear=True)
        return self._lifted["confidence"]


class Segmenter:
    """Frames in any size, masks out at that same size.

    The network runs at the model's input height and each frame's own aspect (width rounded to the
    network's stride): an FCN takes any size, and squashing a 16:9 or 2:1 camera into the 4:3 it was
    trained on shows it narrower cars and roads than it learned. ``input_width``/``input_height``
    force one size; ``input_height`` alone runs the network at that height, still at each frame's
    aspect (a slower CPU's lever: fewer pixels, the same view). A backend whose graph has a fixed
    size gets one graph per frame size, made once.
    """

    def __init__(self, cfg: SegmenterConfig | None = None) -> None:
        self.cfg = c = cfg or SegmenterConfig()
        if c.input_width and not c.input_height:
            raise ValueError("input_width needs input_height (input_height alone keeps each frame's aspect)")
        forced = (c.input_width, c.input_height) if c.input_width else None
        #: the precision the backend runs: the configured one, or what ``auto`` chose on this CPU
        self.precision = c.precision
        self.auto = self._auto_choice(forced or (0, c.input_height))
        kind = default_kind(c.backend, c.device, self.precision)
        self.model_path: Path = self._auto_models[self.precision] if self.auto else resolve_model(c.model, kind)
        self._first: tuple[int, int] | None = None  # what _first_size answered, where the backend asked
        self.backend = self._create(forced or (self._first_size if asks_first_frame(c) else None))
        mc = self.backend.config
        self.classes: list[str] = list(mc.classes)
        #: the size the first backend was made for: the forced size, the first frame's or the model's
        #: training size (at ``input_height`` when that alone is set: the model's aspect at that height)
        self.input_size: tuple[int, int] = forced or self._first or tuple(mc.input_size)
        if not forced and c.input_height and c.input_height != self.input_size[1]:
            self.input_size = inference_size(*self.input_size, c.input_height)
            if not self.backend.dynamic:
                self.backend = self._create(self.input_size)
        # a fixed-size graph we cannot re-export (an .onnx file) runs every frame at its own size
        self.forced_size = forced or (None if self._resizable() else self.input_size)
        self._backends = {self.input_size: self.backend}
        self._failed: dict[tuple[int, int], str] = {}  # sizes whose build failed: not retried until a new Segmenter
        self._building: dict[tuple[int, int], threading.Thread] = {}
        self._build_lock = threading.Lock()
        self._ran: set[tuple[int, int]] = set()  # sizes whose backend ran a frame
        #: as many inferences at once as the backend has streams (a runtime's request is not
        #: reentrant); with one, several frame workers (the node's ``worker_threads``) overlap only
        #: the rest of each frame, not the network
        self._streams = _StreamGate(self.backend.streams)
        self._measuring: threading.Thread | None = None
        self._stop_measuring = threading.Event()
        self._frames_served = 0  # host-path frames segmented (measuring waits for MEASURE_AFTER_FRAMES)
        self._measure_report = None  # set by settle_precision: measuring is due once enough frames are served
        self._mean, self._std = mc.mean, mc.std
        self._lut = palette_bgr(self.classes)
        names = self.classes
        #: (Road, LaneMarking) ids where the model has both and sharpening is on
        self._paint_ids = (names.index("Road"), names.index("LaneMarking")) if self.cfg.sharpen_lanes and {"Road", "LaneMarking"} <= set(names) else None
        device = self.backend.device
        if self.cfg.device_preprocess not in ("auto", "on", "off"):
            raise ValueError(f"device_preprocess must be auto, on or off, got {self.cfg.device_preprocess!r}")
        on_gpu = device is not None and device.type == "cuda"
        self.on_device = device is not None and (self.cfg.device_preprocess == "on" or (self.cfg.device_preprocess == "auto" and on_gpu))
        self.warmup()

    def _first_size(self, mc: ModelConfig, settled: bool) -> tuple[int, int]:
        """The first backend's size (a :data:`~fcn_perception.inference.base.SizeFor`), asked by a
        backend that compiles per size once it has read the model (OpenVINO; TensorRT, exporting a
        checkpoint at that size for its engine): a camera's first frame where one came in time, else the
        model's own (``input_height`` applied either way). A 16:9 car camera otherwise waited for a
        second compile after a first one it never used, which it kept: its first mask 0.9-1.4 s later
        and 30-42 MB more (BENCHMARKS.md, 2026-12-07, seventeenth sitting)."""
        frame = self.cfg.first_frame(settled) if self.cfg.first_frame is not None else None
        if frame is None and not self.cfg.input_height:
            self._first = tuple(mc.input_size)
        else:
            self._first = inference_size(*(frame or mc.input_size), self.cfg.input_height or mc.input_size[1])
        return self._first

    def _create(self, size):
        c = self.cfg
        return create_backend(
            c.backend,
            self.model_path,
            size,
            c.threads,
            c.device,
            precision=self.precision,
            cache=c.cache_dir,
            engine=c.engine,
            streams=c.streams,
            reuse_coarse=c.coarse_reuse_ms > 0,
        )

    def _auto_choice(self, forced: tuple[int, int]) -> Choice | None:
        """``auto`` with the shipped model on OpenVINO: the precision measured on this CPU before, else
        INT8 until :meth:`measure_auto` has timed the others (inference/auto_precision.py)."""
        c = self.cfg
        if c.precision != "auto" or c.model or concrete_backend(c.backend, c.device) != "openvino":
            return None
        onnx = resolve_model(None, "onnx")  # fp32 and bf16 run the same file
        self._auto_models = {"int8": resolve_model(None, "int8"), "fp32": onnx, "bf16": onnx}
        self._auto_key = auto_precision.key(self._auto_models, forced, c.threads)  # (0, h): a height alone
        choice = auto_precision.cached(c.cache_dir, self._auto_key) or auto_precision.Choice("int8", "default, not yet measured on this CPU")
        self.precision = choice.precision
        return choice

    @property
    def needs_measuring(self) -> bool:
        return self.auto is not None and self.auto.how != "cached" and self.auto.how != "measured"

    def measure_auto(self) -> auto_precision.Choice:
        """Time the candidates (each timing run holds the inference lock, so serving pauses rather
        than skews it), keep the result in the cache, and switch to the winner between frames."""
        c = self.cfg
        choice = auto_precision.measure(self._auto_models, self.input_size, c.threads, c.cache_dir, exclusive=self._streams.all, stop=self._stop_measuring)
        auto_precision.store(c.cache_dir, self._auto_key, choice)
        if choice.precision != self.precision:
            old = self.precision, self.model_path
            self.precision, self.model_path = choice.precision, self._auto_models[choice.precision]
            try:
                backend = self._create(self.input_size if self.forced_size or not self.backend.dynamic else None)
            except Exception:
                self.precision, self.model_path = old
                raise
            with self._build_lock:
                self.backend, self._backends = backend, {self.input_size: backend}
        self.auto = choice
        return choice

    def settle_precision(self, report) -> None:
        """Where ``auto`` has not been measured on this CPU yet: :meth:`measure_auto` off the serving
        path (the node's first start), started by the MEASURE_AFTER_FRAMES-th frame — well after the
        start, whose first masks and memory it would otherwise cost (the candidates' compiled models
        are 90-130 MB while they are timed); ``report(level, line)`` says the outcome. :meth:`close`
        stops it between compiles. Nothing to do otherwise."""
        if self.needs_measuring:
            self._measure_report = report

    def _start_measuring(self, report) -> None:
        def run() -> None:
            try:
                report("info", f"precision {self.measure_auto().describe()}; kept for later starts")
            except auto_precision.Stopped:
                pass  # shutting down: measured at the next start
            except Exception as exc:  # a candidate that does not compile here: keep serving what runs
                report("warning", f"precision auto: measuring failed ({exc.__class__.__name__}: {exc}); staying on {self.precision}")

        self._measuring = threading.Thread(target=run, name="measure_precision", daemon=True)
        self._measuring.start()

    @property
    def precision_status(self) -> str:
        """What the backend runs and why, for logs and diagnostics."""
        if self.auto is None:
            return self.precision
        return self.auto.describe() + (" — measuring" if self._measuring is not None and self._measuring.is_alive() else "")

    def _resizable(self) -> bool:
        """Frames can run at their own size: one graph takes any (dynamic), a graph per size can be
        made (a checkpoint to export from, or an ONNX with a free height/width for TensorRT)."""
        return self.backend.dynamic or self.backend.resizable or self.model_path.suffix != ".onnx"

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) the network runs a ``width x height`` frame at."""
        return self.forced_size or inference_size(width, height, self.input_size[1])

    def backend_for(self, size: tuple[int, int]):
        """The backend for one inference size: the dynamic one, or a fixed graph made once per size.

        Making one is a backend operation: its failure is an :class:`InferenceError` (a backend fault,
        which the node counts toward its fallback), remembered for that size so it is not retried on
        every frame. With ``background_builds`` it runs off the caller's thread; frames of that size
        raise :class:`EngineBuilding` until it is done.
        """
        if self.backend.dynamic:
            return self.backend
        with self._build_lock:
            backend = self._backends.get(size)
            if backend is not None:
                self._ran.add(size)
                return backend
            if size in self._failed:
                raise InferenceError(f"no backend for {size[0]}x{size[1]}: its build failed ({self._failed[size]}); not retried until reconfigure")
            if self.cfg.background_builds:
                if size not in self._building:
                    self._building[size] = threading.Thread(target=self._build, args=(size,), name=f"build_{size[0]}x{size[1]}", daemon=True)
                    self._building[size].start()
                raise EngineBuilding(f"the {self.backend_name} backend for {size[0]}x{size[1]} is being built")
        self._build(size)
        return self.backend_for(size)

    def _build(self, size: tuple[int, int]) -> None:
        try:
            backend = self._create(size)
        except Exception as exc:  # out of memory, a parse error, INT8 without an engine, ...
            with self._build_lock:
                self._failed[size] = f"{exc.__class__.__name__}: {exc}"
                self._building.pop(size, None)
            return
        with self._build_lock:
            self._backends[size] = backend
            self._building.pop(size, None)
            unused = self.input_size not in self._ran and self._backends.get(self.input_size) is self.backend
            if unused:
                # the first size never ran a frame: the cameras came later, at another size. Its graph
                # is let go (25-35 MB of a two-camera rig on OpenVINO), and this one is the backend from now on
                del self._backends[self.input_size]
                self.backend, self.input_size = backend, size
        if unused:
            heap.return_freed()

    def close(self, timeout: float = 5.0) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` s for the background builds still running; returns the sizes whose
        build outlived it. A build cannot be interrupted, and a thread still inside a runtime's
        compile when the interpreter exits aborts the process (std::terminate: seen as exit code -6
        on SIGTERM during OpenVINO's first compile of a new size)."""
        deadline = time.monotonic() + timeout
        self._stop_measuring.set()
        with self._build_lock:
            running = dict(self._building)
        if self._measuring is not None:
            running[self.input_size] = self._measuring
        for thread in running.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        return [size for size, thread in running.items() if thread.is_alive()]

    @property
    def building(self) -> list[tuple[int, int]]:
        """Sizes whose backend is being built now (diagnostics say so, at WARN)."""
        with self._build_lock:
            return list(self._building)

    def warmup(self, runs: int = 2) -> None:
        """Run the backend before the first real frame: lazy allocations and kernel selection happen here.
        A graph with the stride-32 switch runs each side of it once, computing and reusing (with two
        streams, one request each): its next frames took no longer than later ones (640x360 on a
        2-core EPYC: the first 65 then 52 ms computing, 48 then 39 reusing). A second round cost 0.09 s
        of every start for nothing."""
        w, h = self.input_size
        if self.backend.rgb_input and self.backend.reuses_coarse:
            x = np.zeros((1, h, w, 3), np.uint8)
            self.backend.infer_rgb_reusing(x, self.backend.infer_rgb_reusing(x, None)[1])
            return
        for _ in range(runs):
            if self.backend.rgb_input:
                self.backend.infer_rgb(np.zeros((1, h, w, 3), np.uint8))
            else:
                self.backend.infer(np.zeros((1, 3, h, w), np.float32))

    @property
    def palette_bgr(self) -> np.ndarray:
        """(256, 3) BGR colour of each class id, as the overlay draws it."""
        return self._lut

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        return preprocess_rgb(rgb, self.size_for(rgb.shape[1], rgb.shape[0]), self._mean, self._std)

    def postprocess(self, mask: np.ndarray, height: int, width: int, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Class ids (nearest) and confidence (bilinear) at the camera's resolution."""
        scale = MaskScale.of(mask, (width, height))
        return scale.lift(mask), scale.lift(confidence, linear=True)

    def segment(self, rgb: np.ndarray, size: tuple[int, int] | None = None, coarse: CoarseScores | None = None, stamp_s: float | None = None) -> Segmentation:
        """Mask and confidence standing for ``size`` (w, h; default: the frame's own), from the network's
        input size; kept at the network's size where that is smaller than the camera's. ``coarse``: the
        camera's kept stride-32 scores, reused for a frame stamped ``stamp_s`` where they are recent
        (``coarse_reuse_ms``) and replaced by the frame's own where not."""
        width, height = size or (rgb.shape[1], rgb.shape[0])
        if self.on_device:
            return self._segment_on_device(rgb, (width, height))
        t0 = time.perf_counter()
        small = resize_rgb(rgb, self.size_for(width, height))
        rgb_input = self.backend.rgb_input  # every size's backend is of one kind
        x = np.ascontiguousarray(small)[None] if rgb_input else preprocess_rgb(small, (small.shape[1], small.shape[0]), self._mean, self._std)
        t1 = time.perf_counter()
        backend = self.backend_for((small.shape[1], small.shape[0]))
        call = backend.infer_rgb if rgb_input else backend.infer
        if coarse is not None and rgb_input and backend.reuses_coarse:  # compiled so only where coarse_reuse_ms > 0
            call = partial(self._infer_reusing, backend, coarse, stamp_s)
        with self._streams:
            mask, confidence = self._infer(call, x)
        for name, image in (("mask", mask), ("confidence", confidence)):
            if image is not None and (image.shape != small.shape[:2] or image.dtype != np.uint8):
                raise InferenceError(f"{self.backend_name} returned a {image.dtype} {name} of shape {image.shape}, expected uint8 {small.shape[:2]}")
        t2 = time.perf_counter()
        if self._paint_ids is not None:
            mask = sharpen_lanes(mask, small, *self._paint_ids)
        if mask.shape[0] > height or mask.shape[1] > width:  # a camera smaller than the network: worked at its own size
            mask, confidence = self.postprocess(mask, height, width, confidence)
        t3 = time.perf_counter()
        self._frames_served += 1
        if self._measure_report is not None and self._frames_served >= MEASURE_AFTER_FRAMES:
            report, self._measure_report = self._measure_report, None
            self._start_measuring(report)
        timings = {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return Segmentation(mask, timings, confidence, (width, height))

    def _infer_reusing(self, backend, coarse: CoarseScores, stamp_s: float | None, x: np.ndarray) -> Inference:
        out, own = backend.infer_rgb_reusing(x, coarse.usable(backend, stamp_s, self.cfg.coarse_reuse_ms / 1e3))
        coarse.keep(backend, stamp_s, own)
        return out

    def _infer(self, call, x) -> Inference:
        """The first image of each output of ``call(x)``; any failure inside the backend (or a backend
        that returns something else) becomes an :class:`InferenceError`."""
        try:
            mask, confidence = call(x)
            return Inference(mask[0], None if confidence is None else confidence[0])
        except Exception as exc:
            raise InferenceError(f"{self.backend_name}: {exc.__class__.__name__}: {exc}") from exc

    def _segment_on_device(self, rgb: np.ndarray, out_size: tuple[int, int]) -> Segmentation:
        """Upload the uint8 frame, resize + normalise + infer + argmax + resize back on the backend's device;
        only the uint8 mask and confidence cross back to the host."""
        import torch
        import torch.nn.functional as F

        from fcn_perception.inference.preprocess import check_rgb, preprocess_tensor

        check_rgb(rgb)
        device = self.backend.device
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)  # honest per-stage times
        w, h = out_size
        with torch.inference_mode():
            t0 = time.perf_counter()
            size = self.size_for(w, h)
            x = preprocess_tensor(torch.from_numpy(rgb).to(device, non_blocking=True), size, self._mean, self._std)
            sync()
            t1 = time.perf_counter()
            backend = self.backend_for(size)
            with self._streams:
                mask, confidence = self._infer(backend.infer_device, x)
            sync()
            t2 = time.perf_counter()
            if self._paint_ids is not None:
                mask = sharpen_lanes_torch(mask, x, self._mean, self._std, *self._paint_ids)
            if tuple(mask.shape) != (h, w):
                mask = F.interpolate(mask[None, None].float(), size=(h, w), mode="nearest")[0, 0].to(torch.uint8)
                if confidence is not None:
                    confidence = F.interpolate(confidence[None, None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
                    confidence = confidence.round().clamp(0, 255).to(torch.uint8)
            out = mask.cpu().numpy()
            conf = None if confidence is None else confidence.cpu().numpy()
            t3 = time.perf_counter()
        return Segmentation(out, {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}, conf, (w, h))

    def overlay(self, bgr: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """Class colours blended over the frame, for people looking at RViz, Foxglove or a PNG."""
        colours = cv2.LUT(cv2.merge([mask, mask, mask]), self._lut.reshape(256, 1, 3))  # 3x faster than numpy indexing
        return cv2.addWeighted(bgr, 1.0 - alpha, colours, alpha, 0.0)
