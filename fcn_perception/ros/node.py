"""``fcn_perception_node``: camera images in, segmentation masks and drivable-area polygons out.

A managed (lifecycle) node, thin glue over :class:`~fcn_perception.scene.pipeline.Pipeline`:
configure loads the model and builds or loads the engine, activate subscribes and publishes,
deactivate stops serving, cleanup frees the backend. ``autostart`` (default) runs configure and
activate at start, so ``ros2 run`` and the launch file behave as a plain node. Callbacks only park
the newest frame per camera; one worker thread runs inference, so the executor never blocks.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field, replace

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import NameValidationException, ParameterException, ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from fcn_perception.inference.backends import InferenceError
from fcn_perception.inference.segmenter import Segmenter
from fcn_perception.ros.diagnostics import BackendHealth, CameraCounters, camera_status
from fcn_perception.ros.messages import OUTPUTS, frame_messages, msg_class, rclpy_factory
from fcn_perception.ros.node_config import NODE_NAME, PARAMS, SPECS, NodeConfig, check_known, check_value
from fcn_perception.ros.topics import camera_info_topic, camera_namespace, output_topic
from fcn_perception.scene.drivable import MaskSmoother
from fcn_perception.scene.ground import quaternion_matrix
from fcn_perception.scene.image_codec import BadFrame, header_warnings
from fcn_perception.scene.pipeline import STAGES, CameraState, Pipeline
from fcn_perception.scene.scheduler import LatestFrames

NODE_STAGES = (*STAGES, "publish")  # publish: building every output message and handing it to DDS
ROS_OWN_PARAMS = ("use_sim_time", "start_type_description_service", "classes", "class_colors")
NO_PUBLISHER_WARN_S = 5.0  # a camera topic nobody publishes for this long is named once at WARN

try:  # TF is optional: present on a ROS install, not in the PyPI wheels
    import tf2_ros
except ImportError:
    tf2_ros = None


@dataclass
class Camera:
    topic: str
    namespace: str
    compressed: bool
    index: int  # position in image_topics (selects its camera_pose)
    info_topic: str
    state: CameraState
    counters: CameraCounters = field(default_factory=lambda: CameraCounters(NODE_STAGES))
    pubs: dict[str, object] = field(default_factory=dict)
    subs: list = field(default_factory=list)
    info: object = None  # the latest CameraInfo
    ground_error: str = ""  # a calibrated camera whose frames still cannot be projected (e.g. resolution mismatch)
    last_stamp_ns: int | None = None
    last_bad_log: float = 0.0
    tf_ok: bool = True  # the last TF lookup succeeded: wait up to tf_timeout for the next (else do not wait)
    unpublished_since: float | None = None  # monotonic time the topic was first seen without a publisher
    warned_no_publisher: bool = False


def _descriptor(name: str) -> ParameterDescriptor:
    spec = SPECS[name]
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = f"one of {list(spec.choices)}"
    if spec.min is not None:
        if isinstance(spec.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool):
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return d


class FcnPerceptionNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMS:
            default = Parameter.Type.DOUBLE_ARRAY if spec.type == "double[]" and not spec.default else spec.default
            self.declare_parameter(spec.name, default, _descriptor(spec.name))
        # an unknown name in the YAML (a typo such as overlay_alfa) is refused as replay refuses it
        check_known({n: None for n in self._parameter_overrides if n not in ROS_OWN_PARAMS and not n.startswith("qos_overrides.")})
        # validated now, so a bad parameter file fails at start with one line, before any transition
        self.cfg = NodeConfig.from_dict({p.name: self._value(p.name) for p in PARAMS})
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.pipeline: Pipeline | None = None
        self.cameras: list[Camera] = []
        self.health = BackendHealth("none")
        self._cond = threading.Condition()
        self._frames = LatestFrames(0)
        self._stop = True
        self._worker: threading.Thread | None = None
        self._busy_since: float | None = None
        self._active = False
        self._timers: list = []
        self._new = rclpy_factory()
        self._tf_buffer = None
        self._last_diag = time.monotonic()
        self.pub_diag = None

    def _value(self, name: str):
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:  # declared by type only (camera_pose) and not set
            return None

    # -- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        log = self.get_logger()
        cfg = self.cfg
        log.info(f"configuring: loading the model ({cfg.model or 'shipped default'}, backend {cfg.backend}); a TensorRT engine build can take minutes")
        t0 = time.monotonic()
        try:
            self.pipeline = Pipeline(cfg.segmenter(), cfg.drivable(), cfg.max_pixels)
        except Exception as exc:  # unreadable model, unknown backend, unwritable cache, ...
            log.error(f"configure failed: {exc}")
            self.pipeline = None
            return TransitionCallbackReturn.FAILURE
        seg = self.pipeline.segmenter
        self.health = BackendHealth(seg.backend_name, limit=cfg.backend_failure_limit, stall_timeout=cfg.stall_timeout)
        self._ground_cfg = cfg.ground()  # read-only parameters: built once, not per frame
        log.info(f"model {seg.model_path.name} on {seg.backend_name} ready in {time.monotonic() - t0:.1f} s")
        self._declare_labels(seg)
        # reliable (readable by best-effort and reliable subscribers), depth 20: a reliable reader that
        # falls behind on a loaded machine must not lose a sample to KEEP_LAST overwriting it
        out_qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
        if cfg.use_tf and tf2_ros is not None and self._tf_buffer is None:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self.cameras = []
        for i, topic in enumerate(dict.fromkeys(cfg.image_topics)):
            info_topic = camera_info_topic(topic)
            state = CameraState.for_camera(f"no CameraInfo on {info_topic} yet", cfg.temporal_smoothing)
            cam = Camera(topic, camera_namespace(topic), topic.rstrip("/").endswith("/compressed"), i, info_topic, state)
            for key, out in OUTPUTS.items():
                if not out.live:
                    continue
                cls = msg_class(out.msgtype)
                cam.pubs[key] = self.create_lifecycle_publisher(cls, output_topic(cam.namespace, out.topic), out_qos)
            self.cameras.append(cam)
        self.pub_diag = self.create_lifecycle_publisher(DiagnosticArray, "/diagnostics", 10)
        self._frames = LatestFrames(len(self.cameras))
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="fcn_inference", daemon=True)
        self._worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self.cfg
        qos = QoSProfile(depth=cfg.qos_depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=qos_profile_sensor_data.durability)
        if cfg.qos_reliability == "reliable":
            qos.reliability = ReliabilityPolicy.RELIABLE
        for cam in self.cameras:
            msg_type = CompressedImage if cam.compressed else Image
            cam.subs = [
                self.create_subscription(msg_type, cam.topic, lambda msg, c=cam: self._on_image(c, msg), qos),
                self.create_subscription(CameraInfo, cam.info_topic, lambda msg, c=cam: self._on_camera_info(c, msg), qos),
            ]
            cam.unpublished_since, cam.warned_no_publisher = None, False
            self.get_logger().info(f"camera {cam.topic} ({msg_type.__name__}) + {cam.info_topic} -> {cam.namespace or '/'}/{{segmentation,drivable_area}}/...")
        self._last_diag = time.monotonic()
        self._timers = [self.create_timer(cfg.diagnostics_period, self._publish_diagnostics), self.create_timer(1.0, self._check_publishers)]
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        for cam in self.cameras:
            for sub in cam.subs:
                self.destroy_subscription(sub)
            cam.subs = []
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []
        with self._cond:
            self._frames.clear()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for cam in self.cameras:
            for pub in cam.pubs.values():
                self.destroy_lifecycle_publisher(pub)
        if self.pub_diag is not None:
            self.destroy_lifecycle_publisher(self.pub_diag)
            self.pub_diag = None
        self.cameras = []
        self.pipeline = None  # frees the backend (sessions, engines, GPU memory)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self._active:
            self.on_deactivate(state)
        if self.pipeline is not None or self.cameras:
            self.on_cleanup(state)
        return TransitionCallbackReturn.SUCCESS

    def _declare_labels(self, seg: Segmenter) -> None:
        """The model's class names and colours as read-only parameters: a consumer names mask ids without MODEL.md."""
        colours = [f"#{r:02x}{g:02x}{b:02x}" for b, g, r in seg.palette_bgr[: len(seg.classes)]]
        for name, value, what in (
            ("classes", list(seg.classes), "Class names of the model, index = mask id."),
            ("class_colors", colours, "Overlay colour of each class (#rrggbb), index = mask id."),
        ):
            if self.has_parameter(name):
                self.undeclare_parameter(name)
            self.declare_parameter(name, value, ParameterDescriptor(description=what, read_only=True), ignore_override=True)

    # -- executor thread -------------------------------------------------------------------
    def _on_image(self, cam: Camera, msg) -> None:
        now = time.monotonic()
        try:
            warnings, stamp = header_warnings(msg.header, cam.last_stamp_ns)
        except Exception:  # a message without a usable header still gets counted and decoded
            warnings, stamp = ["header_unreadable"], cam.last_stamp_ns
        with self._cond:
            cam.counters.count("received")
            cam.last_stamp_ns = stamp
            for w in warnings:
                cam.counters.warn(w)
            if self._frames.put(cam.index, msg, now):
                cam.counters.count("dropped")
            self._cond.notify()

    def _on_camera_info(self, cam: Camera, info) -> None:
        cam.info = info  # calibrated by the worker with the pose at each image's stamp

    def _check_publishers(self) -> None:
        """The most common start-up mistake is a topic name nobody publishes: say it once, by name."""
        now = time.monotonic()
        for cam in self.cameras:
            if self.count_publishers(cam.topic) > 0 or cam.counters.received:
                cam.unpublished_since = None
                continue
            cam.unpublished_since = cam.unpublished_since or now
            if not cam.warned_no_publisher and now - cam.unpublished_since >= NO_PUBLISHER_WARN_S:
                cam.warned_no_publisher = True
                self.get_logger().warning(f"no publisher on {cam.topic} for {NO_PUBLISHER_WARN_S:.0f} s: is the camera running, and is this its topic?")

    def _on_set_parameters(self, params) -> SetParametersResult:
        values = {}
        for p in params:
            spec = SPECS.get(p.name)
            if spec is None:
                continue
            if spec.read_only:
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only (restart the node to change it)")
            try:
                check_value(p.name, p.value)
            except ValueError as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            values[p.name] = p.value
        if not values:
            return SetParametersResult(successful=True)
        current = {f: getattr(self.cfg, f) for f in SPECS}
        try:
            new_cfg = NodeConfig.from_dict({**current, **values})
            with self._cond:  # the worker reads cfg/pipeline between frames only
                if self.pipeline is not None:
                    self.pipeline.set_drivable(new_cfg.drivable())
                if new_cfg.temporal_smoothing != self.cfg.temporal_smoothing:
                    for cam in self.cameras:
                        cam.state.smoother = MaskSmoother(new_cfg.temporal_smoothing)
                self.health.limit, self.health.stall_timeout = new_cfg.backend_failure_limit, new_cfg.stall_timeout
                self.cfg = new_cfg
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- worker thread ---------------------------------------------------------------------
    def _next_frame(self) -> tuple[Camera, object, float] | None:
        with self._cond:
            while not self._stop:
                if (item := self._frames.take()) is not None:
                    index, msg, received = item
                    return self.cameras[index], msg, received
                self._cond.wait(0.5)
        return None

    def _work(self) -> None:
        while (item := self._next_frame()) is not None:
            self._serve(*item)

    def _stop_worker(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=10.0)
            self._worker = None

    def _serve(self, cam: Camera, msg, received: float) -> None:
        """One frame, whatever happens: published, or counted as bad input, or counted as a backend fault."""
        self._busy_since = time.monotonic()  # read by diagnostics: a call that never returns is reported
        try:
            self._process(cam, msg, received)
        except BadFrame as exc:
            self._count_bad(cam, exc.reason, str(exc))
        except InferenceError as exc:
            self._count_bad(cam, "inference_error", str(exc))
            self._on_backend_fault(str(exc))
        except Exception as exc:  # a bug in post-processing must not stop the node either
            self._count_bad(cam, "processing_error", f"{exc.__class__.__name__}: {exc}")
        else:
            self.health.consecutive = 0
        finally:
            self._busy_since = None

    def _on_backend_fault(self, detail: str) -> None:
        h, cfg, log = self.health, self.cfg, self.get_logger()
        h.faults += 1
        h.consecutive += 1
        h.last_fault = detail
        if h.consecutive < cfg.backend_failure_limit:
            return
        if cfg.on_backend_failure == "fallback_cpu" and not h.fell_back:
            log.error(f"backend {h.name} failed {h.consecutive} times in a row ({detail}); falling back to ONNX Runtime on the CPU")
            h.fell_back = True  # one fallback attempt; afterwards keep trying what there is
            try:
                segmenter = Segmenter(replace(cfg.segmenter(), backend="onnxruntime", device="cpu", engine="", precision="auto"))
                with self._cond:
                    self.pipeline.segmenter = segmenter
                h.name, h.consecutive = segmenter.backend_name, 0
            except Exception as exc:
                log.error(f"fallback to ONNX Runtime failed: {exc.__class__.__name__}: {exc}; retrying the current backend")
        elif h.consecutive == cfg.backend_failure_limit or h.consecutive % 100 == 0:
            log.error(f"backend {h.name}: {h.consecutive} inference errors in a row ({detail}); still retrying")

    def _count_bad(self, cam: Camera, reason: str, detail: str) -> None:
        with self._cond:
            cam.counters.count("bad", reason)
        now = time.monotonic()
        if now - cam.last_bad_log >= 5.0:  # throttled: a broken driver must not flood the log
            cam.last_bad_log = now
            self.get_logger().warning(f"{cam.topic}: dropped bad frame ({detail}); {cam.counters.bad} bad frames so far")

    def _camera_pose(self, cam: Camera, header) -> tuple[tuple | None, str]:
        """((xyz, rpy, optical rotation or None), source) from TF at the image's stamp (bounded wait), else
        the camera_pose parameter if the user set one; (None, reason) otherwise — never a guess."""
        tf_error = "tf2_ros is not installed" if tf2_ros is None else ("use_tf is false" if not self.cfg.use_tf else "")
        if self._tf_buffer is not None and header.frame_id:
            try:
                stamp = rclpy.time.Time.from_msg(header.stamp)
                # wait for TF only while it has been answering: a frame that never appears in TF must
                # not cost every image tf_timeout
                timeout = rclpy.duration.Duration(seconds=self.cfg.tf_timeout if cam.tf_ok else 0.0)
                tf = self._tf_buffer.lookup_transform(self.cfg.base_frame, header.frame_id, stamp, timeout=timeout)
                t, q = tf.transform.translation, tf.transform.rotation
                cam.tf_ok = True
                return ((t.x, t.y, t.z), (0.0, 0.0, 0.0), quaternion_matrix(q.x, q.y, q.z, q.w)), "tf"
            except (tf2_ros.TransformException, ValueError) as exc:
                cam.tf_ok = False
                tf_error = f"TF has no {self.cfg.base_frame} -> {header.frame_id} at the image's stamp ({exc.__class__.__name__})"
        pose = self.cfg.pose(cam.index)
        if pose is not None:
            return (*pose, None), "camera_pose parameter"
        return None, f"no camera pose: {tf_error or 'no TF'}, and camera_pose is not set"

    def _calibrate(self, cam: Camera, header) -> None:
        if cam.info is None:
            return
        pose, source = self._camera_pose(cam, header)
        with self._cond:
            changed = cam.state.calibrate(cam.info, self._ground_cfg, *pose, source) if pose is not None else cam.state.no_pose(source)
        if changed and cam.state.ground is not None:  # once per change of calibration, not per frame
            self.get_logger().info(f"{cam.info_topic}: ground outputs {cam.state.ground_status}")
        elif changed:  # (rclpy refuses two severities from one call site)
            self.get_logger().warning(f"{cam.info_topic}: ground outputs {cam.state.ground_status}")

    def _process(self, cam: Camera, msg, received: float) -> None:
        cfg = self.cfg
        self._calibrate(cam, msg.header)
        result = self.pipeline.process(msg, cam.state)
        error = result.ground_error if cam.state.ground is not None else ""
        if error != cam.ground_error:  # logged when it starts and when it ends, not per frame
            cam.ground_error = error
            self.get_logger().warning(f"{cam.topic}: ground outputs skipped: {error}" if error else f"{cam.topic}: ground outputs back")
        t = time.perf_counter()
        overlay = None
        if cfg.publish_overlay and cam.pubs["overlay"].get_subscription_count() > 0:  # visualisation: only for a viewer
            overlay = self.pipeline.overlay_bgr(result, cfg.overlay_alpha)
        markers = cam.pubs["markers"].get_subscription_count() > 0
        mask_png = cam.pubs["mask_compressed"].get_subscription_count() > 0  # encoded only for a subscriber
        for key, out in frame_messages(self._new, msg.header, result, cfg.base_frame, overlay, markers, mask_png).items():
            cam.pubs[key].publish(out)
        result.timings_ms["publish"] = (time.perf_counter() - t) * 1e3
        with self._cond:
            cam.counters.served((time.monotonic() - received) * 1e3, result.timings_ms)

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        if self.pub_diag is not None:
            self.pub_diag.publish(self.diagnostics())

    def diagnostics(self) -> DiagnosticArray:
        """One status per camera over the window since the previous call (which it starts anew)."""
        now = time.monotonic()
        period = max(now - self._last_diag, 1e-3)
        self._last_diag = now
        busy = self._busy_since
        self.health.busy_s = now - busy if busy is not None else 0.0
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for cam in self.cameras:
            with self._cond:
                window = cam.counters.take_window()
                ground = f"disabled: {cam.ground_error}" if cam.ground_error else cam.state.ground_status
                warn = cam.state.calibration_refused or bool(cam.ground_error)
                level, message, values = camera_status(cam.counters, window, period, self.health, ground, warn)
            status = DiagnosticStatus(name=f"{self.get_name()}: {cam.topic}", hardware_id=cam.namespace or "/", message=message)
            status.level = bytes([level])
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            arr.status.append(status)
        return arr


def main(args: list[str] | None = None) -> int:
    try:
        rclpy.init(args=args)
    except Exception as exc:  # e.g. a --params-file that does not exist (RCLError)
        print(f"[{NODE_NAME}] error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    node = None
    code = 0
    try:
        node = FcnPerceptionNode()
        if node.cfg.autostart:
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError("configure failed (the reason is logged above)")
            node.trigger_activate()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, RuntimeError, ParameterException, NameValidationException) as exc:
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
