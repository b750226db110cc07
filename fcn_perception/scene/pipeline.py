"""Per-frame pipeline, free of ROS: decode -> segment -> drivable area, with per-stage timings.

The node, replay, eval and bench all run frames through :class:`Pipeline`, so a number measured
offline is the number the car gets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import cv2
import numpy as np

from fcn_perception.inference.coarse_reuse import CoarseScores
from fcn_perception.inference.mask_scale import MaskScale
from fcn_perception.inference.segmenter import Segmentation, Segmenter, SegmenterConfig
from fcn_perception.scene.drivable import DEFAULT_DRIVABLE, DrivableConfig, MaskSmoother, Region, class_lut, drivable_mask, ego_region, extract_regions
from fcn_perception.scene.ground import CameraModel, GroundConfig, GroundProjector, GroundResult
from fcn_perception.scene.image_codec import DEFAULT_MAX_PIXELS, RawConverter, camera_size, decode
from fcn_perception.scene.lane_lines import EgoLane, LaneLineConfig, LaneTracker, ego_lane
from fcn_perception.scene.lanes import LANE_CLASS, LanePoints, lane_points

STAGES = ("decode", "preprocess", "infer", "postprocess", "drivable", "ground", "lanes")


@dataclass
class CameraState:
    """What the pipeline keeps per camera between frames: its ground model and its smoothing history."""

    ground: GroundProjector | None = None  # None until a usable CameraInfo arrived
    ground_status: str = "no CameraInfo received yet"  # why there is no ground output, for diagnostics
    pose_source: str = ""  # where the pose of the current ground model came from ("" = no ground model)
    smoother: MaskSmoother = field(default_factory=lambda: MaskSmoother(0.0))
    lane_tracker: LaneTracker = field(default_factory=LaneTracker)  # the ego lane's boundaries over frames
    #: the car's 4x4 pose in odom_frame at the current frame's stamp (TF), None where it is not known:
    #: the lane tracker then moves the last frame's boundaries by the car's motion before matching
    odom_pose: np.ndarray | None = None
    stamp_s: float | None = None  # the current frame's stamp (the tracker smooths and bridges by time)
    #: the stride-32 class scores of this camera's last frame that computed them, for its next frames
    coarse: CoarseScores = field(default_factory=CoarseScores)
    _calibration: tuple | None = None

    @classmethod
    def stated(cls, width: int, height: int, intrinsics: tuple, pose: tuple, cfg: GroundConfig | None = None) -> CameraState:
        """A camera calibrated from stated numbers, for frames that come without CameraInfo (photos,
        videos, datasets): ``intrinsics`` fx, fy, cx, cy at a width x height, scaled to this frame;
        ``pose`` x, y, z, roll, pitch, yaw in base_frame. Refused in one line when it sees no ground."""
        fx, fy, cx, cy, w0, h0 = intrinsics
        sx, sy = width / w0, height / h0
        info = SimpleNamespace(k=[fx * sx, 0, cx * sx, 0, fy * sy, cy * sy, 0, 0, 1], d=[], width=width, height=height)
        state = cls()
        state.calibrate(info, cfg or GroundConfig(), tuple(pose[:3]), tuple(pose[3:]), source="stated camera")
        if state.ground is None:
            raise ValueError(f"the stated camera gives no ground outputs ({state.ground_status})")
        return state

    @classmethod
    def for_camera(cls, why_no_ground: str, smoothing: float = 0.0) -> CameraState:
        """A camera before its first CameraInfo (the node and replay set cameras up alike)."""
        return cls(ground_status=f"disabled: {why_no_ground}", smoother=MaskSmoother(smoothing))

    @property
    def calibration_refused(self) -> bool:
        """A CameraInfo arrived but gives no ground outputs (unusable, or no known camera pose), as
        opposed to none arriving."""
        return self._calibration is not None and self.ground is None

    def no_pose(self, reason: str) -> bool:
        """No known camera pose: ground outputs stop (never a guessed pose); True when that is news."""
        key = ("no pose", reason)
        if key == self._calibration:
            return False
        self._calibration, self.ground, self.ground_status, self.pose_source = key, None, f"disabled: {reason}", ""
        return True

    def calibrate(self, info, cfg: GroundConfig, xyz, rpy=(0.0, 0.0, 0.0), optical_rotation=None, source: str = "camera_pose parameter") -> bool:
        """Take a CameraInfo and pose; True when the ground model changed (new or different calibration).

        A degenerate CameraInfo disables the ground outputs with the reason kept in ``ground_status``.
        Identical calibrations, which arrive with every frame, cost one comparison.
        """
        try:
            rot = None if optical_rotation is None else np.round(np.asarray(optical_rotation, np.float64), 9).tobytes()
            key = (tuple(np.asarray(info.k, np.float64).ravel()), tuple(np.asarray(info.d, np.float64).ravel()), int(info.width), int(info.height))
            key += (tuple(np.round(xyz, 9)), tuple(np.round(rpy, 9)), rot, source)
        except (TypeError, ValueError, AttributeError) as exc:  # not even readable: one bad message must not stop anything
            key = ("unreadable", str(exc))
        if key == self._calibration:
            return False
        self._calibration = key
        try:
            if key[0] == "unreadable":
                raise ValueError(f"CameraInfo is unreadable ({key[1]})")
            camera = CameraModel.from_camera_info(info, xyz, rpy, optical_rotation)
            self.ground = GroundProjector(camera, cfg)
            self.ground_status, self.pose_source = f"ok (pose from {source})", source
        except (ValueError, cv2.error) as exc:
            self.ground, self.pose_source = None, ""
            self.ground_status = f"disabled: {exc}"
        return True


@dataclass
class FrameResult:
    rgb: np.ndarray | None  # decoded frame, HxWx3 RGB: smaller than the camera's when a JPEG was decoded reduced
    #: class ids and confidence at the size the frame was worked at (the network's, where smaller than
    #: the camera's); ``mask`` and ``confidence`` enlarge them to the camera's on first use
    seg: Segmentation
    regions: list[Region]  # in the camera's pixels
    ego: Region | None  # None: no drivable area ahead (a valid answer)
    ground: GroundResult | None = None  # None: no usable CameraInfo (see ground_error)
    ground_error: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    lanes: LanePoints | None = None  # lane markings on the ground: None without a pose or a lane class
    #: mean confidence (0-1) over the drivable pixels: how sure the model is where the car may drive;
    #: None without a confidence output or without drivable pixels
    drivable_confidence: float | None = None
    #: the ego lane's boundaries on the ground (tracked per camera): None where there are no lane points
    ego_lane: EgoLane | None = None
    lane_camera: CameraModel | None = None  # the camera the boundaries were found with (their image lines)

    @property
    def mask(self) -> np.ndarray:
        """HxW uint8 class ids at the camera's resolution."""
        return self.seg.mask

    @property
    def confidence(self) -> np.ndarray | None:
        """HxW uint8 top-class probability (255 = 1.0) at the camera's resolution; None: the model has none."""
        return self.seg.confidence

    @property
    def size(self) -> tuple[int, int]:
        """(w, h) of the camera."""
        return self.seg.scale.camera

    @property
    def lane_lines_px(self) -> list[tuple[int, np.ndarray]]:
        """(position, (N, 2) image pixels) of each boundary in front of the lens, for the overlay
        (projected when drawn, not for every frame)."""
        if self.ego_lane is None or self.lane_camera is None:
            return []
        lines = []
        for b in self.ego_lane.boundaries():
            pixels, in_front = self.lane_camera.ground_to_pixels(b.points())
            lines.append((b.position, pixels[in_front]))
        return lines

    def camera_rgb(self) -> np.ndarray:
        """The frame at the camera's resolution, enlarged when it was decoded reduced."""
        w, h = self.size
        if self.rgb.shape[:2] == (h, w):
            return self.rgb
        return cv2.resize(self.rgb, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass
class Segmented:
    """A frame after the network (:meth:`Pipeline.segment_msg`), before its drivable area."""

    rgb: np.ndarray
    seg: Segmentation
    decode_ms: float | None = None  # None: the frame came decoded


def mean_confidence(confidence: np.ndarray | None, where: np.ndarray) -> float | None:
    """Mean of a uint8 confidence image (255 = 1.0) over the nonzero pixels of ``where``; None
    when there is no confidence or no such pixel."""
    if confidence is None or not cv2.countNonZero(where):
        return None
    return float(cv2.mean(confidence, mask=where)[0]) / 255.0


class Pipeline:
    def __init__(
        self,
        segmenter: Segmenter | SegmenterConfig | None = None,
        drivable: DrivableConfig | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        convert_raw: RawConverter | None = None,
        reduced_decode: bool = True,
    ) -> None:
        # A frame's OpenCV calls are small (0.05-0.5 ms each). On OpenCV's thread pool each one wakes a
        # second thread that then spins waiting for more: 2-2.5 ms of a core a frame here, taken from
        # the network, for no gain in time. Frames run side by side instead (the node's worker_threads).
        cv2.setNumThreads(1)
        self.segmenter = segmenter if isinstance(segmenter, Segmenter) else Segmenter(segmenter)
        self.drivable = drivable or DrivableConfig()
        self.max_pixels = max_pixels
        self.convert_raw = convert_raw  # the node's cv_bridge, where a ROS install has one
        #: decode a JPEG at the smallest 1/2, 1/4, 1/8 scale that covers the network's input; the outputs
        #: stay at the camera's resolution, ``FrameResult.rgb`` is then the smaller frame
        self.reduced_decode = reduced_decode
        self.set_drivable(self.drivable)

    @classmethod
    def for_config(cls, cfg, segmenter: SegmenterConfig | None = None, convert_raw: RawConverter | None = None) -> Pipeline:
        """The pipeline a NodeConfig describes (``segmenter``: its segmenter settings, changed)."""
        return cls(segmenter or cfg.segmenter(), cfg.drivable(), cfg.max_pixels, convert_raw, cfg.reduced_decode)

    def set_drivable(self, cfg: DrivableConfig) -> None:
        """Swap the drivable-area settings (runtime parameter updates); unknown class names are refused."""
        classes = self.segmenter.classes
        # a class of the default list the model lacks (LaneMarking, for an 11-class model) is skipped;
        # any other unknown name is a mistake
        unknown = [c for c in cfg.classes if c not in classes and c not in DEFAULT_DRIVABLE]
        if unknown or not any(c in classes for c in cfg.classes):
            raise ValueError(f"drivable classes {unknown or cfg.classes} not in the model's classes {classes}")
        self._lut = class_lut([classes.index(c) for c in cfg.classes if c in classes])
        self.drivable = cfg
        self.lane_id = classes.index(LANE_CLASS) if LANE_CLASS in classes else None

    def process(self, msg, camera: CameraState | None = None) -> FrameResult:
        """An Image or CompressedImage message (rclpy or rosbags); raises BadFrame for unusable input."""
        return self.finish(self.segment_msg(msg, camera, camera.stamp_s if camera is not None else None), camera)

    def segment_msg(self, msg, camera: CameraState | None = None, stamp_s: float | None = None) -> Segmented:
        """A message's first part: decoded and segmented. Of the camera's state it reads and keeps
        only the stride-32 scores (for a frame stamped ``stamp_s``), so frames of one camera may run
        it side by side; :meth:`finish` is the part that must go in frame order."""
        t = time.perf_counter()
        rgb = decode(msg, self.max_pixels, self.convert_raw, self.segmenter.size_for if self.reduced_decode else None)
        size = camera_size(msg, rgb)
        decoded = (time.perf_counter() - t) * 1e3
        return Segmented(rgb, self.segmenter.segment(rgb, size, camera.coarse if camera is not None else None, stamp_s), decoded)

    def process_rgb(self, rgb: np.ndarray, camera: CameraState | None = None, size: tuple[int, int] | None = None) -> FrameResult:
        """``size`` (w, h): the camera's, when ``rgb`` was decoded smaller; every output is at that size."""
        coarse, stamp_s = (camera.coarse, camera.stamp_s) if camera is not None else (None, None)
        return self.finish(Segmented(rgb, self.segmenter.segment(rgb, size, coarse, stamp_s)), camera)

    def finish(self, part: Segmented, camera: CameraState | None = None) -> FrameResult:
        """The rest of a frame: drivable area, ground and lanes, which read and change the camera's
        state (its smoothing, its lane tracker at ``camera.stamp_s``)."""
        seg = part.seg
        result = self.drivable_area(seg.work_mask, camera, seg.work_confidence, part.rgb, seg.size)
        result.rgb = part.rgb
        result.timings_ms = {**({"decode": part.decode_ms} if part.decode_ms is not None else {}), **seg.timings_ms, **result.timings_ms}
        return result

    def drivable_pixels(self, mask: np.ndarray) -> np.ndarray:
        """(H, W) uint8 0/1: the pixels of the drivable classes, unsmoothed."""
        return drivable_mask(mask, self._lut)

    def drivable_area(
        self,
        mask: np.ndarray,
        camera: CameraState | None = None,
        confidence: np.ndarray | None = None,
        rgb: np.ndarray | None = None,
        size: tuple[int, int] | None = None,
    ) -> FrameResult:
        """Mask -> regions, ego region and (with a calibrated camera) ground polygons and grid;
        with ``confidence``, its mean over the drivable pixels; with ``rgb`` (any scale of the frame),
        the lane boundaries' colours. ``size`` (w, h): the camera's, where ``mask`` and ``confidence``
        are smaller (the network's); every pixel coordinate of the result is the camera's."""
        t0 = time.perf_counter()
        scale = MaskScale.of(mask, size)
        binary = self.drivable_pixels(mask)
        sure = mean_confidence(confidence, binary)
        if camera is not None:
            binary = camera.smoother(binary)
        regions = extract_regions(binary, self.drivable, scale)
        ego = ego_region(regions, *scale.camera, self.drivable)
        t1 = time.perf_counter()
        ground, error, lanes = None, "", None
        projector = camera.ground if camera is not None else None  # read once: the node may recalibrate meanwhile
        if projector is None:
            error = camera.ground_status if camera is not None else "no camera state"
        else:
            try:
                ground = projector.project(regions, ego, binary, scale.camera)
                if self.lane_id is not None:
                    lanes = lane_points(mask, self.lane_id, projector, self.drivable.max_lane_points, scale.camera)
            except ValueError as exc:  # e.g. CameraInfo for another resolution: image outputs still go out
                error, ground, lanes = str(exc), None, None
        t2 = time.perf_counter()
        lane = self._ego_lane(lanes, confidence, camera, scale, rgb)
        timings = {"drivable": (t1 - t0) * 1e3, "ground": (t2 - t1) * 1e3, "lanes": (time.perf_counter() - t2) * 1e3}
        result = FrameResult(None, Segmentation(mask, {}, confidence, scale.camera), regions, ego, ground, error, timings, lanes, sure)
        result.ego_lane, result.lane_camera = lane, projector.camera if lane is not None else None
        return result

    def _ego_lane(self, lanes: LanePoints | None, confidence, camera: CameraState | None, scale: MaskScale, rgb=None) -> EgoLane | None:
        """The lane's boundaries from the frame's lane points (tracked when the camera has state).
        ``confidence`` at the work size of ``scale``; ``rgb``: the frame at any scale, for the
        boundaries' colours."""
        if lanes is None:
            return None
        sure = colours = None
        if len(lanes.pixels):
            if confidence is not None:
                u, v = scale.to_work(lanes.pixels).T
                sure = confidence[v, u].astype(np.float32) / 255.0
            if rgb is not None:  # a reduced decode is smaller than the camera the pixels are in
                u, v = MaskScale(scale.camera, (rgb.shape[1], rgb.shape[0])).to_work(lanes.pixels).T
                colours = rgb[v, u]
        lane = ego_lane(lanes.ground[:, :2], LaneLineConfig(max_range_m=self.drivable.lane_max_range), sure, colours)
        if camera is not None:
            lane = camera.lane_tracker.update(lane, camera.odom_pose, camera.stamp_s)
        return lane

    def overlay_bgr(self, result: FrameResult, alpha: float = 0.5) -> np.ndarray:
        """Class colours plus the ego drivable polygon (green outline, holes in red) for people to look at."""
        img = self.segmenter.overlay(np.ascontiguousarray(result.camera_rgb()[..., ::-1]), result.mask, alpha)
        if result.ego is not None:
            thickness = max(1, img.shape[1] // 320)
            cv2.polylines(img, [np.round(result.ego.outer).astype(np.int32)], True, (0, 255, 0), thickness, cv2.LINE_AA)
            holes = [np.round(h).astype(np.int32) for h in result.ego.holes]
            if holes:
                cv2.polylines(img, holes, True, (0, 0, 255), thickness, cv2.LINE_AA)
        if result.lanes is not None and len(result.lanes.pixels):  # the lane points sent on the ground, as dots
            u, v = np.round(result.lanes.pixels).astype(np.int32).T
            img[v, u] = (0, 255, 255)
        for position, pixels in result.lane_lines_px:  # ego-left cyan, ego-right magenta, adjacent grey
            colour = {-1: (255, 255, 0), 1: (255, 0, 255)}.get(position, (160, 160, 160))
            cv2.polylines(img, [np.round(pixels).astype(np.int32)], False, colour, max(2, img.shape[1] // 240), cv2.LINE_AA)
        return img
