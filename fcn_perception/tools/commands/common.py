"""What several commands share: the model and backend options, the labelling-set options, and the
Segmenter those options describe."""

from __future__ import annotations

import argparse

from fcn_perception.inference.backends import BACKENDS, PRECISIONS
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.tools.args import count_arg, number_arg, param_arg, size_arg


def model_args(sp: argparse.ArgumentParser, backend: bool = True) -> None:
    sp.add_argument("--model", default="", help="checkpoint (.pt) or .onnx; default: the shipped model")
    if backend:
        sp.add_argument("--backend", default="auto", choices=BACKENDS)
        sp.add_argument(
            "--precision",
            default="auto",
            choices=PRECISIONS,
            help="auto: TensorRT fp16, PyTorch on CUDA fp16, on the CPU the shipped INT8 (OpenVINO or ONNX Runtime); bf16: OpenVINO on a CPU with bf16",
        )
        sp.add_argument("--size", type=size_arg, default=None, help="force the network's input WxH (default: model height, each frame's aspect)")
    sp.add_argument("--threads", type=param_arg("threads"), default=0, help="CPU threads, 0 = all cores")


def camera_args(sp: argparse.ArgumentParser, pose_default: str, what: str) -> None:
    """A camera stated by numbers, for frames without CameraInfo (photos, videos, datasets)."""
    sp.add_argument("--camera-pose", default=pose_default, help=f"x,y,z,roll,pitch,yaw of the camera in base_frame (m, rad){what}")
    sp.add_argument("--intrinsics", default="460,460,240,180,480,360", help="fx,fy,cx,cy,width,height (scaled to each frame; default: CamVid, approximate)")


def stated_camera(args: argparse.Namespace) -> tuple[tuple, tuple] | None:
    """(intrinsics, pose) from :func:`camera_args`, None without a pose; a bad value is one clear line (ValueError)."""
    if not args.camera_pose:
        return None
    try:
        pose = tuple(float(v) for v in args.camera_pose.split(","))
        k = [float(v) for v in args.intrinsics.split(",")]
    except ValueError:
        raise ValueError(f"--camera-pose and --intrinsics take numbers separated by commas, got {args.camera_pose!r}, {args.intrinsics!r}") from None
    if len(pose) != 6 or len(k) != 6:
        raise ValueError("--camera-pose takes 6 numbers (x,y,z,roll,pitch,yaw), --intrinsics 6 (fx,fy,cx,cy,width,height)")
    return (k[0], k[1], k[2], k[3], int(k[4]), int(k[5])), pose


def uncertain_args(sp: argparse.ArgumentParser, top: int, what: str) -> None:
    sp.add_argument(
        "--export-uncertain",
        default="",
        metavar="DIR",
        help="write the frames worth labelling as a dataset (class_dict.csv, frames/images, frames/labels with the model's pre-labels, frames.csv)",
    )
    sp.add_argument("--top", type=count_arg(), default=top, metavar="N", help=what)
    sp.add_argument("--min-gap", type=number_arg(), default=1.0, metavar="S", help="no two exported frames of one camera within S seconds of recording time")


def segmenter(args: argparse.Namespace) -> Segmenter:
    w, h = args.size or (0, 0)
    return Segmenter(
        SegmenterConfig(model=args.model or "", backend=args.backend, threads=args.threads, precision=args.precision, input_width=w, input_height=h)
    )


def uncertain(args: argparse.Namespace) -> tuple[int, float] | None:
    """(top, min_gap_s) when --export-uncertain is asked for (their ranges are checked by argparse)."""
    return (args.top, args.min_gap) if args.export_uncertain else None
