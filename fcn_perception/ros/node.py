"""``fcn_perception_node``: camera images in, segmentation masks and drivable-area polygons out.

A managed (lifecycle) node, thin glue over the ROS-free core: every frame goes through the one frame
loop (:func:`~fcn_perception.scene.frame_loop.serve_frame`: network, pose, the rest, emit, served) that replay
runs too, and every output comes from the one registry (``ros/outputs.py``). The node adds what only
a node does: parameters, lifecycle, subscriptions, TF lookups, publishers and /diagnostics.
Callbacks only park the newest frame per camera; worker threads
(:class:`~fcn_perception.scene.scheduler.FrameWorker`) serve them, so the executor never blocks.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from types import SimpleNamespace

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo

from fcn_perception import heap
from fcn_perception.inference.base import LOAD_YIELDS
from fcn_perception.inference.segmenter import Segmenter, asks_first_frame
from fcn_perception.params.node_config import NodeConfig, runtime_update
from fcn_perception.params.table import NODE_NAME, SPECS
from fcn_perception.ros import outputs
from fcn_perception.ros.cdr import as_header, rosbags_message, serialize, typestore
from fcn_perception.ros.dds_profile import use_node_profile
from fcn_perception.ros.diagnostics import ROOM_CPU_PCT, camera_status, fusion_status
from fcn_perception.ros.endpoint_watch import NO_EVENT_HANDLERS, NO_SUBSCRIPTION_EVENT_HANDLERS, EndpointWatch
from fcn_perception.ros.first_frame import FirstFrame
from fcn_perception.ros.fused import Fusion
from fcn_perception.ros.image_bridge import cv_bridge_converter
from fcn_perception.ros.messages import msg_class
from fcn_perception.ros.parameters import declare_all, declare_labels
from fcn_perception.ros.topics import camera_info_topic, camera_namespace, image_msgtype, output_topic
from fcn_perception.scene.backend_guard import BackendGuard, BackendHealth
from fcn_perception.scene.camera import CameraWorkflow
from fcn_perception.scene.frame_loop import serve_frame
from fcn_perception.scene.ground import quaternion_matrix
from fcn_perception.scene.pipeline import FrameResult, Pipeline
from fcn_perception.scene.scheduler import FrameWorker, overlaps
from fcn_perception.stats import CpuShare
from fcn_perception.waiting import wait_until

NO_PUBLISHER_WARN_S = 5.0  # a camera topic nobody publishes for this long is named once at WARN
#: the outputs' QoS: reliable (readable by best-effort and reliable subscribers), depth 20: a reliable
#: reader that falls behind on a loaded machine must not lose a sample to KEEP_LAST overwriting it
OUT_QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)

try:  # TF is optional: present on a ROS install, not in the PyPI wheels
    import tf2_ros
except ImportError:
    tf2_ros = None


@dataclass
class CameraIo:
    """What only the node has per camera: topics, publishers, subscriptions, TF and publisher watch."""

    topic: str
    namespace: str
    info_topic: str
    pubs: dict[str, object] = field(default_factory=dict)
    subs: list = field(default_factory=list)
    tf_ok: bool = True  # the last TF lookup succeeded: wait up to tf_timeout for the next (else do not wait)
    unpublished_since: float | None = None  # monotonic time the topic was first seen without a publisher
    several_publishers: bool = False  # the graph's last word: then sequence numbers interleave, gaps tell nothing
    warned_no_publisher: bool = False


def lookup_pose(buffer, base_frame: str, header, timeout_s: float) -> tuple[np.ndarray | None, str]:
    """(base_frame -> the image's frame as 4x4, "tf") at the image's stamp, waiting at most
    ``timeout_s``; or (None, why TF has none)."""
    try:
        stamp = rclpy.time.Time.from_msg(header.stamp)
        tf = buffer.lookup_transform(base_frame, header.frame_id, stamp, timeout=rclpy.duration.Duration(seconds=timeout_s))
    except (tf2_ros.TransformException, ValueError) as exc:
        return None, f"TF has no {base_frame} -> {header.frame_id} at the image's stamp ({exc.__class__.__name__})"
    t, q = tf.transform.translation, tf.transform.rotation
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = quaternion_matrix(q.x, q.y, q.z, q.w), (t.x, t.y, t.z)
    return m, "tf"


def odom_pose(buffer, cfg: NodeConfig, header) -> np.ndarray | None:
    """The car's pose in odom_frame at the image's stamp (the lane tracker's motion), or None."""
    if buffer is None or not cfg.odom_frame:
        return None
    return lookup_pose(buffer, cfg.odom_frame, SimpleNamespace(stamp=header.stamp, frame_id=cfg.base_frame), 0.0)[0]


class Publishers:
    """The frame loop's sink for one camera: the registry's outputs the node builds now (those only
    a viewer needs — overlay, markers, the mask's PNG twin, confidence — only while subscribed) on
    the camera's publishers."""

    def __init__(self, node: FcnPerceptionNode, io: CameraIo) -> None:
        self.node, self.io = node, io

    def emit(self, cam: CameraWorkflow, msg, result: FrameResult) -> None:
        cfg, pubs, pipeline = self.node.cfg, self.io.pubs, self.node.pipeline
        keys = outputs.node_keys(lambda k: pubs[k].get_subscription_count() > 0, lambda gate: getattr(cfg, gate))
        built = outputs.build(keys, rosbags_message, as_header(msg.header), result, cfg.base_frame, lambda: pipeline.overlay_bgr(result, cfg.overlay_alpha))
        for key, out in built.items():
            pubs[key].publish(serialize(out, outputs.OUTPUTS[key].msgtype))  # CDR bytes: ros/cdr.py says why
        if self.node.fusion is not None:
            with self.node.fusion_lock:
                self.node.fusion.feed(cam, msg.header, result)


class FcnPerceptionNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        # validated now, so a bad parameter file fails at start with one line, before any transition
        self.cfg = declare_all(self, self._parameter_overrides)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Pipeline | None = None
        self.guard: BackendGuard | None = None
        self.cameras: list[CameraWorkflow] = []
        self.io: list[CameraIo] = []
        self.worker = FrameWorker(0, self._serve)
        self.fusion, self.fusion_lock, self.fused_pubs = None, threading.Lock(), {}
        self._timers, self._tf_buffer, self.pub_diag = [], None, None
        self._last_diag, self._active, self._cpu = time.monotonic(), False, CpuShare()
        self._endpoints = EndpointWatch(self)  # readers never served and cameras never taken, said once each

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log, cfg = self.get_logger(), self.cfg
        log.info(f"configuring: loading the model ({cfg.model or 'shipped default'}, backend {cfg.backend}); a TensorRT engine build can take minutes")
        t0 = time.monotonic()
        yields, first = threading.Event(), FirstFrame(cfg.image_topics[0], cfg.cache_dir)
        seg_cfg = replace(cfg.segmenter(), background_builds=True, first_frame=first)

        def load() -> Pipeline:
            LOAD_YIELDS.set(yields)
            return Pipeline.for_config(cfg, seg_cfg, cv_bridge_converter())

        with ThreadPoolExecutor(1, thread_name_prefix="load_model") as pool:
            # while the model loads, this thread hears the first camera's first frame, whose size the
            # model is compiled for, and makes all that needs no model once the load yields:
            # OpenVINO's compile leaves Python's lock and a core to it (inference/base.py, LOAD_YIELDS)
            loading = pool.submit(load)
            if asks := asks_first_frame(seg_cfg):
                first.listen(self, self._camera_qos())
            wait_until(lambda: yields.is_set() or loading.done(), math.inf, interval=0.005)
            self._open_outputs()
            try:  # engines for further frame sizes are built off the serving path
                self.pipeline = loading.result()
            except Exception as exc:  # unreadable model, unknown backend, unwritable cache, ...
                log.error(f"configure failed: {exc}")
                self._close_outputs()
                self.pipeline = None
                return TransitionCallbackReturn.FAILURE
        seg = self.pipeline.segmenter
        cpu = replace(cfg.segmenter(), backend="onnxruntime", device="cpu", engine="", precision="auto")
        self.guard = BackendGuard(self.pipeline, lambda: Segmenter(cpu), cfg.backend_failure_limit, cfg.on_backend_failure, cfg.stall_timeout)
        streams = f"{seg.backend.streams} inference streams" if seg.backend.streams > 1 else "one inference stream"
        size = "x".join(map(str, seg.input_size)) + (first.describe() if asks else "")
        ready = f"model {seg.model_path.name} on {seg.backend_name} at {size} ready in {time.monotonic() - t0:.1f} s"
        log.info(f"{ready}; precision {seg.precision_status}; {streams}")
        heap.return_freed()  # what loading and warming up the model left
        seg.settle_precision(lambda level, line: log.info(line) if level == "info" else log.warning(line))
        declare_labels(self, seg)
        if cfg.fusion_rate > 0:  # node-level outputs, under the node's namespace
            self.fusion = Fusion(cfg, seg.classes, lambda frame, header: lookup_pose(self._tf_buffer, frame, header, 0.0)[0] if self._tf_buffer else None)
            self.fused_pubs = {k: self._publisher(msg_class(o.msgtype), o.topic, OUT_QOS) for k, o in outputs.FUSED_OUTPUTS.items()}
        overlap = overlaps(seg.backend.streams, len(self.cameras), cfg.worker_threads)
        self.worker = FrameWorker(len(self.cameras), self._serve, threads=cfg.worker_threads, overlap=overlap)
        self.worker.start()
        self._subscribe()
        heap.freeze_long_lived()  # all that serving keeps, made: no full scans of it while serving
        return TransitionCallbackReturn.SUCCESS

    def _open_outputs(self) -> None:
        """Each camera's workflow and publishers, and /diagnostics: what needs no model. Also the
        message types the outputs are built from (ros/cdr.py, made on first use)."""
        cfg = self.cfg
        if cfg.use_tf and tf2_ros is not None and self._tf_buffer is None:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        ground, topics = cfg.ground(), list(dict.fromkeys(cfg.image_topics))
        why = "no CameraInfo on {} yet"
        self.cameras = [CameraWorkflow(t, i, cfg.pose(i), ground, cfg.temporal_smoothing, why.format(camera_info_topic(t))) for i, t in enumerate(topics)]
        self.io = [CameraIo(t, camera_namespace(t), camera_info_topic(t)) for t in topics]
        for io in self.io:
            for key, out in outputs.OUTPUTS.items():
                if out.live:
                    io.pubs[key] = self._publisher(msg_class(out.msgtype), output_topic(io.namespace, out.topic), OUT_QOS)
        self.pub_diag = self._publisher(DiagnosticArray, "/diagnostics", 10)
        typestore()

    def _close_outputs(self) -> None:
        for pub in self._output_publishers():
            self.destroy_lifecycle_publisher(pub)
        self.pub_diag, self.cameras, self.io, self.fusion, self.fused_pubs = None, [], [], None, {}

    def _publisher(self, msg_type, topic: str, qos):
        """Without rclpy's per-publisher event handlers: the executor walks them on every wake-up
        (``ros/endpoint_watch.py``), and :meth:`_check_graph` says what they would say."""
        return self.create_lifecycle_publisher(msg_type, topic, qos, event_callbacks=NO_EVENT_HANDLERS)

    def _subscribe(self) -> None:
        """Subscriptions live from configure to cleanup: a frame that arrives while inactive is
        received and counted (``dropped: inactive``), never served, so a manager can see the camera
        is there before it activates the node. Without rclpy's event handlers, as the publishers:
        :meth:`_check_graph` names a camera publisher they cannot take."""
        qos = self._camera_qos()
        for i, io in enumerate(self.io):
            msg_type = msg_class(image_msgtype(io.topic))

            def on_image(msg, info, i=i) -> None:  # two arguments: rclpy hands over the message info too
                self._on_image(i, msg, info)

            io.subs = [
                self.create_subscription(msg_type, io.topic, on_image, qos, event_callbacks=NO_SUBSCRIPTION_EVENT_HANDLERS),
                self.create_subscription(
                    CameraInfo, io.info_topic, lambda msg, i=i: setattr(self.cameras[i], "info", msg), qos, event_callbacks=NO_SUBSCRIPTION_EVENT_HANDLERS
                ),
            ]
            self.get_logger().info(f"camera {io.topic} ({msg_type.__name__}) + {io.info_topic} -> {io.namespace or '/'}/{{segmentation,drivable_area}}/...")

    def _camera_qos(self) -> QoSProfile:
        cfg = self.cfg
        qos = QoSProfile(depth=cfg.qos_depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=qos_profile_sensor_data.durability)
        if cfg.qos_reliability == "reliable":
            qos.reliability = ReliabilityPolicy.RELIABLE
        return qos

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for io in self.io:
            io.unpublished_since, io.warned_no_publisher = None, False
        self._last_diag, self._cpu = time.monotonic(), CpuShare()
        self._timers = [self.create_timer(self.cfg.diagnostics_period, self._publish_diagnostics), self.create_timer(1.0, self._check_graph)]
        if self.fusion is not None:
            self._timers.append(self.create_timer(1.0 / self.cfg.fusion_rate, self._publish_fused))
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        self.worker.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.worker.stop()
        for sub in [s for io in self.io for s in io.subs]:
            self.destroy_subscription(sub)
        self._close_outputs()
        if self.pipeline is not None and (left := self.pipeline.segmenter.close()):
            self.get_logger().warning(f"backend builds still running at cleanup: {left}")
        self.pipeline = self.guard = None  # frees the backend (sessions, engines, GPU memory)
        heap.thaw()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self.on_deactivate(state)
        if self.pipeline is not None or self.cameras:
            self.on_cleanup(state)
        return TransitionCallbackReturn.SUCCESS

    # -- executor thread -------------------------------------------------------------------
    def _on_image(self, index: int, msg, info: dict | None = None) -> None:
        """``info``: rclpy's message info, whose publication sequence number shows frames lost before
        this one. Kilted's names the publisher; without it a topic of several publishers tells nothing."""
        info = info or {}
        gid = info.get("publisher_gid")
        publisher = bytes(gid["data"]) if gid else None
        sequence = None if publisher is None and self.io[index].several_publishers else info.get("publication_sequence_number")
        self.cameras[index].received(msg.header, sequence, publisher)
        if not self._active:
            self.cameras[index].dropped("inactive")
        elif self.worker.put(index, msg, time.monotonic()):
            self.cameras[index].dropped("newer_frame")

    def _check_graph(self) -> None:
        self._check_publishers()
        lines = self._endpoints.check(self._output_publishers()) + self._endpoints.check_writers([s for io in self.io for s in io.subs])
        for line in lines:
            self.get_logger().warning(line)

    def _output_publishers(self) -> list:
        return [p for io in self.io for p in io.pubs.values()] + list(self.fused_pubs.values()) + ([self.pub_diag] if self.pub_diag else [])

    def _check_publishers(self) -> None:
        """The most common start-up mistake is a topic name nobody publishes: say it once, by name.
        Also notes a topic several publishers write, whose sequence numbers cannot tell lost frames."""
        now = time.monotonic()
        for cam, io in zip(self.cameras, self.io, strict=True):
            publishers = self.count_publishers(io.topic)
            io.several_publishers = publishers > 1
            if publishers > 0 or cam.counters.received:
                io.unpublished_since = None
                continue
            io.unpublished_since = io.unpublished_since or now
            if not io.warned_no_publisher and now - io.unpublished_since >= NO_PUBLISHER_WARN_S:
                io.warned_no_publisher = True
                self.get_logger().warning(f"no publisher on {io.topic} for {NO_PUBLISHER_WARN_S:.0f} s: is the camera running, and is this its topic?")

    def _on_set_parameters(self, params) -> SetParametersResult:
        try:  # read-only, out of range, a class the model lacks: refused with the reason, nothing changed
            new_cfg = runtime_update(self.cfg, {p.name: p.value for p in params if p.name in SPECS})
            with self.worker.lock:  # taken between frames
                if self.pipeline is not None:
                    self.pipeline.set_drivable(new_cfg.drivable())
                if new_cfg.temporal_smoothing != self.cfg.temporal_smoothing:
                    for cam in self.cameras:
                        cam.set_smoothing(new_cfg.temporal_smoothing)
                if self.guard is not None:
                    self.guard.configure(new_cfg.backend_failure_limit, new_cfg.on_backend_failure, new_cfg.stall_timeout)
                self.cfg = new_cfg
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- worker thread ---------------------------------------------------------------------
    def _serve(self, index: int, msg, received: float, in_turn=None) -> None:
        """One frame through the frame loop; its lines logged (rclpy wants one severity per call site)."""
        io, log = self.io[index], self.get_logger()
        pose, sink = (lambda header: self._tf_pose(io, header)), Publishers(self, io)
        odom = partial(odom_pose, self._tf_buffer, self.cfg)
        served = serve_frame(self.cameras[index], self.pipeline, msg, pose, sink, self.guard, received, odom, in_turn)
        for level, line in served.logs:
            if level == "error":
                log.error(line)
            elif level == "info":
                log.info(line)
            else:
                log.warning(line)

    def _tf_pose(self, io: CameraIo, header) -> tuple[np.ndarray | None, str]:
        if self._tf_buffer is None or not header.frame_id:
            return None, "tf2_ros is not installed" if tf2_ros is None else "use_tf is false" if not self.cfg.use_tf else "no TF"
        # wait for TF only while it has been answering: a frame never in TF must not cost every image tf_timeout
        m, note = lookup_pose(self._tf_buffer, self.cfg.base_frame, header, self.cfg.tf_timeout if io.tf_ok else 0.0)
        io.tf_ok = m is not None
        return m, note

    def _publish_fused(self) -> None:
        """The fused grid at its rate (nothing before a camera has a view); what only a viewer needs, only while subscribed."""
        keys = outputs.node_keys(lambda k: self.fused_pubs[k].get_subscription_count() > 0, lambda gate: getattr(self.cfg, gate), outputs.FUSED_OUTPUTS)
        with self.fusion_lock:
            snapshot = None if self.fusion.silent() else self.fusion.snapshot()
        made = {} if snapshot is None else self.fusion.build(snapshot, rosbags_message, keys)
        for key, msg in made.items():
            self.fused_pubs[key].publish(serialize(msg, outputs.FUSED_OUTPUTS[key].msgtype))

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self.pub_diag is not None:
            self.pub_diag.publish(self.diagnostics())

    def diagnostics(self) -> DiagnosticArray:
        """One status per camera over the window since the previous call (which it starts anew)."""
        now = time.monotonic()
        period, self._last_diag = max(now - self._last_diag, 1e-3), now
        cpu_pct = self._cpu.take()
        cpu = {"node_cpu_pct": f"{cpu_pct:.1f}"}  # the whole process's, beside each camera's drops
        spare = _spare_streams_for(len(self.cameras), self.cfg.worker_threads, self.worker.overlap, cpu_pct)
        busy = self.worker.busy_since
        health = self.guard.observe(now - busy if busy is not None else 0.0) if self.guard is not None else BackendHealth("none")
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for cam, io in zip(self.cameras, self.io, strict=True):
            level, message, values = camera_status(cam, cam.counters.take_window(), period, health, spare)
            values |= _matched(io) | cpu
            status = DiagnosticStatus(name=f"{self.get_name()}: {cam.topic}", hardware_id=io.namespace or "/", message=message)
            status.level = bytes([level])
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            arr.status.append(status)
        if self.fusion is not None:
            with self.fusion_lock:
                level, message, values = fusion_status(*self.fusion.status())
            status = DiagnosticStatus(name=f"{self.get_name()}: fusion", hardware_id="fused", message=message)
            status.level, status.values = bytes([level]), [KeyValue(key=k, value=v) for k, v in values.items()]
            arr.status.append(status)
        return arr


def _spare_streams_for(cameras: int, workers: int, overlap: bool, cpu_pct: float) -> int | None:
    """The ``inference_streams`` that would let a camera's next frame start beside its last (one more
    than the cameras), where it would: a worker free for it (``overlaps``), the CPU with room, not
    already so."""
    return None if overlap or not overlaps(cameras + 1, cameras, workers) or cpu_pct >= ROOM_CPU_PCT else cameras + 1


def _matched(io: CameraIo) -> dict[str, str]:
    """Who is connected, as DDS matched them (not just listed in the graph: a QoS that can never
    meet matches nothing): the camera's publishers on the node's image subscription, and the outputs
    someone reads. A harness waits on these before its first frame, since a frame sent before the
    node's end of the match is never delivered, however reliable."""
    publishers = io.subs[0].get_publisher_count() if io.subs else 0
    read = [key for key, pub in io.pubs.items() if pub.get_subscription_count() > 0]
    return {"camera_publishers": str(publishers), "outputs_read": ", ".join(read) or "none"}


def stop_on_sigint(spinning: threading.Event) -> None:
    """Ctrl-C stops a spinning node between callbacks, never inside one. rclpy.init's own handler,
    chained to this one (so this must come first), shuts the context down and the executor leaves
    spin() at a clean point. Python's default raises KeyboardInterrupt at whatever bytecode runs,
    which can be inside rclpy while it makes a callback's Task: the half-made Task then printed a
    traceback from its ``__del__`` as the node exited (CI, 2026-12-07). Until the executor spins
    (loading the model), a Ctrl-C still interrupts at once."""

    def handler(signum: int, frame: object) -> None:
        if not spinning.is_set():
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def main(args: list[str] | None = None) -> int:
    spinning = threading.Event()
    stop_on_sigint(spinning)  # before rclpy.init, which chains its handler to this one
    dds = use_node_profile()  # before the participant exists
    try:
        rclpy.init(args=args)
    except Exception as exc:  # e.g. a --params-file that does not exist (RCLError)
        print(f"[{NODE_NAME}] error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    node = None
    code = 0
    try:
        node = FcnPerceptionNode()
        node.get_logger().info(dds)
        if node.cfg.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError("configure failed (the reason is logged above)")
            node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinning.set()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, RuntimeError, ParameterException, NameValidationException) as exc:
        if rclpy.ok():  # after SIGINT/SIGTERM shut the context down, the executor's error is the stop itself
            print(f"[{NODE_NAME}] error: {exc}", file=sys.stderr)  # one clear line, no traceback
            code = 2
    finally:
        if node is not None:
            try:
                node.on_shutdown(None)
            finally:
                node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
