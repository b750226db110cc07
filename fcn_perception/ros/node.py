"""``fcn_perception_node``: camera images in, segmentation masks and drivable-area polygons out.

Thin glue over :class:`~fcn_perception.scene.pipeline.Pipeline`. Callbacks only park the newest frame
per camera; one worker thread runs inference, so the executor never blocks and latency never grows
under load (older frames are dropped and counted).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from fcn_perception.bags.bag_io import camera_info_topic, camera_namespace
from fcn_perception.inference.backends import InferenceError
from fcn_perception.inference.segmenter import Segmenter
from fcn_perception.ros.messages import OUTPUTS, frame_messages, output_topic, rclpy_factory
from fcn_perception.ros.node_config import NODE_NAME, PARAMS, SPECS, NodeConfig, check_value
from fcn_perception.scene.drivable import MaskSmoother
from fcn_perception.scene.ground import quaternion_matrix
from fcn_perception.scene.image_codec import BadFrame, header_warnings
from fcn_perception.scene.pipeline import STAGES, CameraState, Pipeline

NODE_STAGES = (*STAGES, "publish")  # publish: building every output message and handing it to DDS

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
    pubs: dict[str, object] = field(default_factory=dict)
    ground_error: str = ""  # a calibrated camera whose frames still cannot be projected (e.g. resolution mismatch)
    pending: tuple | None = None  # (msg, receive monotonic time): only the newest frame waits
    last_served: float = 0.0  # monotonic time its last frame was taken by the worker
    received: int = 0
    published: int = 0
    dropped: int = 0
    bad: int = 0
    bad_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)  # served, but with a header problem (see header_warnings)
    last_stamp_ns: int | None = None
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=300))
    stages_ms: dict[str, deque] = field(default_factory=lambda: {s: deque(maxlen=300) for s in NODE_STAGES})
    window: dict[str, int] = field(default_factory=lambda: {"received": 0, "published": 0, "dropped": 0, "bad": 0, "warnings": 0})
    last_bad_log: float = 0.0


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


class FcnPerceptionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec.name))
        self.cfg = NodeConfig.from_dict({p.name: self.get_parameter(p.name).value for p in PARAMS})
        self.pipeline = Pipeline(self.cfg.segmenter(), self.cfg.drivable(), self.cfg.max_pixels)
        self.get_logger().info(
            f"model {self.pipeline.segmenter.model_path.name} on {self.pipeline.segmenter.backend_name}, "
            f"input {self.pipeline.segmenter.input_size[0]}x{self.pipeline.segmenter.input_size[1]}"
        )
        qos = QoSProfile(depth=self.cfg.qos_depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=qos_profile_sensor_data.durability)
        if self.cfg.qos_reliability == "reliable":
            qos.reliability = ReliabilityPolicy.RELIABLE
        out_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)  # readable by best-effort and reliable subscribers
        self._new = rclpy_factory()
        self._tf_buffer = None
        if self.cfg.use_tf and tf2_ros is not None:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self.cameras: list[Camera] = []
        for i, topic in enumerate(dict.fromkeys(self.cfg.image_topics)):
            info_topic = camera_info_topic(topic)
            state = CameraState(ground_status=f"disabled: no CameraInfo on {info_topic} yet", smoother=MaskSmoother(self.cfg.temporal_smoothing))
            cam = Camera(topic, camera_namespace(topic), topic.rstrip("/").endswith("/compressed"), i, info_topic, state)
            for key, out in OUTPUTS.items():
                cls = self._new(out.msgtype).__class__
                cam.pubs[key] = self.create_publisher(cls, output_topic(cam.namespace, out.topic), out_qos)
            msg_type = CompressedImage if cam.compressed else Image
            self.create_subscription(msg_type, topic, lambda msg, c=cam: self._on_image(c, msg), qos)
            self.create_subscription(CameraInfo, info_topic, lambda msg, c=cam: self._on_camera_info(c, msg), qos)
            self.cameras.append(cam)
            self.get_logger().info(f"camera {topic} ({msg_type.__name__}) + {info_topic} -> {cam.namespace or '/'}/{{segmentation,drivable_area}}/...")
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._cond = threading.Condition()
        self._stop = False
        self.backend_faults = 0  # inference errors in total
        self.consecutive_faults = 0  # in a row; reset by the next good frame
        self.last_fault = ""
        self.fell_back = False
        self.busy_since: float | None = None  # when the worker took its current frame
        self._worker = threading.Thread(target=self._work, name="fcn_inference", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(self.cfg.diagnostics_period, self._publish_diagnostics)
        self._last_diag = time.monotonic()

    # -- executor thread -------------------------------------------------------------------
    def _on_image(self, cam: Camera, msg) -> None:
        now = time.monotonic()
        try:
            warnings, stamp = header_warnings(msg.header, cam.last_stamp_ns)
        except Exception:  # a message without a usable header still gets counted and decoded
            warnings, stamp = ["header_unreadable"], cam.last_stamp_ns
        with self._cond:
            cam.received += 1
            cam.window["received"] += 1
            cam.last_stamp_ns = stamp
            for w in warnings:
                cam.warnings[w] = cam.warnings.get(w, 0) + 1
                cam.window["warnings"] += 1
            if cam.pending is not None:
                cam.dropped += 1
                cam.window["dropped"] += 1
            cam.pending = (msg, now)
            self._cond.notify()

    def _camera_pose(self, cam: Camera, frame_id: str) -> tuple[tuple, tuple, np.ndarray | None, str]:
        """(xyz, rpy, optical rotation or None, source): TF's transform when it has one, else camera_pose."""
        xyz, rpy = self.cfg.pose(cam.index)
        if self._tf_buffer is not None and frame_id:
            try:
                tf = self._tf_buffer.lookup_transform(self.cfg.base_frame, frame_id, rclpy.time.Time())
                t, q = tf.transform.translation, tf.transform.rotation
                return (t.x, t.y, t.z), rpy, quaternion_matrix(q.x, q.y, q.z, q.w), "tf"
            except (tf2_ros.TransformException, ValueError):
                pass
        return xyz, rpy, None, "camera_pose parameter"

    def _on_camera_info(self, cam: Camera, info) -> None:
        state = cam.state
        xyz, rpy, optical, source = self._camera_pose(cam, info.header.frame_id)
        with self._cond:
            changed = state.calibrate(info, self.cfg.ground(), xyz, rpy, optical, source)
        if changed and state.ground is not None:  # once per calibration, not per frame
            self.get_logger().info(f"{cam.info_topic}: ground outputs {state.ground_status}")
        elif changed:  # (rclpy refuses two severities from one call site)
            self.get_logger().warning(f"{cam.info_topic}: ground outputs {state.ground_status}")

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
                self.pipeline.set_drivable(new_cfg.drivable())
                if new_cfg.temporal_smoothing != self.cfg.temporal_smoothing:
                    for cam in self.cameras:
                        cam.state.smoother = MaskSmoother(new_cfg.temporal_smoothing)
                self.cfg = new_cfg
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    # -- worker thread ---------------------------------------------------------------------
    def _take_pending(self) -> tuple[Camera, object, float] | None:
        """The next frame to serve, or None; call with the lock held. The camera served longest ago goes
        first (round robin under overload: cameras triggered together must not starve the later ones),
        then the older frame."""
        ready = [c for c in self.cameras if c.pending is not None]
        if not ready:
            return None
        cam = min(ready, key=lambda c: (c.last_served, c.pending[1]))
        cam.last_served = time.monotonic()
        msg, received = cam.pending
        cam.pending = None
        return cam, msg, received

    def _next_frame(self) -> tuple[Camera, object, float] | None:
        with self._cond:
            while not self._stop:
                if (item := self._take_pending()) is not None:
                    return item
                self._cond.wait(0.5)
        return None

    def _work(self) -> None:
        while (item := self._next_frame()) is not None:
            self._serve(*item)

    def _serve(self, cam: Camera, msg, received: float) -> None:
        """One frame, whatever happens: published, or counted as bad input, or counted as a backend fault."""
        self.busy_since = time.monotonic()  # read by diagnostics: a call that never returns is reported
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
            self.consecutive_faults = 0
        finally:
            self.busy_since = None

    def _on_backend_fault(self, detail: str) -> None:
        self.backend_faults += 1
        self.consecutive_faults += 1
        self.last_fault = detail
        cfg = self.cfg
        if self.consecutive_faults < cfg.backend_failure_limit:
            return
        log = self.get_logger()
        if cfg.on_backend_failure == "fallback_cpu" and not self.fell_back:
            log.error(
                f"backend {self.pipeline.segmenter.backend_name} failed {self.consecutive_faults} times in a row ({detail}); "
                "falling back to ONNX Runtime on the CPU"
            )
            try:
                seg_cfg = replace(cfg.segmenter(), backend="onnxruntime", device="cpu", engine="")
                segmenter = Segmenter(seg_cfg)
                with self._cond:
                    self.pipeline.segmenter = segmenter
                self.fell_back = True
                self.consecutive_faults = 0
            except Exception as exc:
                log.error(f"fallback to ONNX Runtime failed: {exc.__class__.__name__}: {exc}; retrying the current backend")
                self.fell_back = True  # one fallback attempt; afterwards keep trying what there is
        elif self.consecutive_faults == cfg.backend_failure_limit or self.consecutive_faults % 100 == 0:
            log.error(f"backend {self.pipeline.segmenter.backend_name}: {self.consecutive_faults} inference errors in a row ({detail}); still retrying")

    def _count_bad(self, cam: Camera, reason: str, detail: str) -> None:
        with self._cond:
            cam.bad += 1
            cam.window["bad"] += 1
            cam.bad_reasons[reason] = cam.bad_reasons.get(reason, 0) + 1
        now = time.monotonic()
        if now - cam.last_bad_log >= 5.0:  # throttled: a broken driver must not flood the log
            cam.last_bad_log = now
            self.get_logger().warning(f"{cam.topic}: dropped bad frame ({detail}); {cam.bad} bad frames so far")

    def _process(self, cam: Camera, msg, received: float) -> None:
        cfg = self.cfg
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
        for key, out in frame_messages(self._new, msg.header, result, cfg.base_frame, overlay, markers).items():
            cam.pubs[key].publish(out)
        result.timings_ms["publish"] = (time.perf_counter() - t) * 1e3
        with self._cond:
            cam.published += 1
            cam.window["published"] += 1
            cam.latencies_ms.append((time.monotonic() - received) * 1e3)
            for stage in NODE_STAGES:
                cam.stages_ms[stage].append(result.timings_ms.get(stage, 0.0))

    # -- diagnostics -----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        self.pub_diag.publish(self.diagnostics())

    def diagnostics(self) -> DiagnosticArray:
        """One status per camera over the window since the previous call (which it starts anew)."""
        now = time.monotonic()
        period = max(now - self._last_diag, 1e-3)
        self._last_diag = now
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for cam in self.cameras:
            with self._cond:
                window, cam.window = cam.window, {k: 0 for k in cam.window}
                lat = np.array(cam.latencies_ms) if cam.latencies_ms else np.zeros(0)
                stages = {s: float(np.median(v)) if v else 0.0 for s, v in cam.stages_ms.items()}
                totals = (cam.received, cam.published, cam.dropped, cam.bad, dict(cam.bad_reasons), dict(cam.warnings))
            status = DiagnosticStatus(name=f"{self.get_name()}: {cam.topic}", hardware_id=cam.namespace or "/")
            failing = self.consecutive_faults >= self.cfg.backend_failure_limit
            busy_since = self.busy_since
            stuck_s = now - busy_since if busy_since is not None else 0.0
            if stuck_s > self.cfg.stall_timeout:  # a call that hangs cannot be interrupted; it can be reported
                status.level = DiagnosticStatus.ERROR
                status.message = f"processing stalled: the current frame has been in the pipeline for {stuck_s:.1f} s"
            elif failing:  # the backend, not the input: every camera is affected
                status.level = DiagnosticStatus.ERROR
                status.message = f"backend failing: {self.consecutive_faults} inference errors in a row ({self.last_fault})"
            elif self.fell_back:
                status.level = DiagnosticStatus.WARN
                status.message = f"running on the fallback backend {self.pipeline.segmenter.backend_name} after inference errors ({self.last_fault})"
            elif window["received"] == 0:
                status.level, status.message = DiagnosticStatus.WARN, "no input"
            elif window["bad"] or window["dropped"]:
                status.level, status.message = DiagnosticStatus.WARN, f"{window['dropped']} dropped, {window['bad']} bad in the last {period:.1f} s"
            elif window["warnings"]:
                status.level, status.message = DiagnosticStatus.WARN, f"{window['warnings']} frames with header problems in the last {period:.1f} s"
            elif cam.state.calibration_refused or cam.ground_error:  # image outputs go on, ground ones stop
                status.level, status.message = DiagnosticStatus.WARN, f"ground outputs disabled: {cam.ground_error or cam.state.ground_status}"
            else:
                status.level, status.message = DiagnosticStatus.OK, "ok"
            p50, p95 = np.percentile(lat, [50, 95]) if lat.size else (0.0, 0.0)
            values = {
                "input_rate_hz": f"{window['received'] / period:.2f}",
                "output_rate_hz": f"{window['published'] / period:.2f}",
                "latency_p50_ms": f"{p50:.1f}",
                "latency_p95_ms": f"{p95:.1f}",
                "frames_received": str(totals[0]),
                "frames_published": str(totals[1]),
                "frames_dropped": str(totals[2]),
                "frames_bad": str(totals[3]),
                "bad_reasons": ", ".join(f"{k}={v}" for k, v in sorted(totals[4].items())) or "none",
                "header_warnings": ", ".join(f"{k}={v}" for k, v in sorted(totals[5].items())) or "none",
                "backend": self.pipeline.segmenter.backend_name,
                "backend_faults": str(self.backend_faults),
                "backend_consecutive_faults": str(self.consecutive_faults),
                "backend_fell_back": str(self.fell_back).lower(),
                "current_frame_age_s": f"{stuck_s:.2f}",
                "ground_outputs": f"disabled: {cam.ground_error}" if cam.ground_error else cam.state.ground_status,
                **{f"{s}_ms_p50": f"{v:.2f}" for s, v in stages.items()},
            }
            status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
            arr.status.append(status)
        return arr

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._worker.join(timeout=10.0)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = FcnPerceptionNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, FileNotFoundError, ParameterException, NameValidationException) as exc:
        print(f"[{NODE_NAME}] error: {exc}", file=sys.stderr)  # one clear line, no traceback
        code = 2
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
