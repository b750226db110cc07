"""``fcn-perception build-engine``: a TensorRT engine for this GPU, into the engine cache."""

from __future__ import annotations

import argparse

from fcn_perception.tools.args import count_arg


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--onnx", required=True)
    sp.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    sp.add_argument(
        "--calib-dir", default="", help="folder of real frames: INT8 calibration on TensorRT 10 from an fp32 graph (not needed for a Q/DQ graph, nor on 11)"
    )
    sp.add_argument("--calib-frames", type=count_arg(), default=200)
    sp.add_argument("--width", type=count_arg(0), default=0, help="frame size the engine serves (needed for an ONNX with a free height/width)")
    sp.add_argument("--height", type=count_arg(0), default=0)


def run(args: argparse.Namespace) -> int:
    """Serialize a TensorRT engine for this GPU into the engine cache (needs TensorRT and CUDA)."""
    from fcn_perception.inference.tensorrt.build import build_engine, calibration_frames
    from fcn_perception.inference.tensorrt.plan import build_plan
    from fcn_perception.inference.tensorrt.versions import trt_major, unavailable_reason

    if reason := unavailable_reason():
        raise ValueError(f"build-engine: {reason}")
    size = (args.width, args.height) if args.width and args.height else None
    plan = build_plan(args.onnx, args.precision, size, trt_major())
    frames = None
    if plan.calibrate:  # TensorRT 10, INT8 from an fp32 graph; 11 and a Q/DQ graph need no frames
        if not args.calib_dir:
            raise ValueError("int8 from an fp32 graph on TensorRT 10 needs --calib-dir with real frames (or give the Q/DQ graph of quantize --symmetric)")
        _, _, h, w = plan.input_shape
        frames = calibration_frames(args.onnx, args.calib_dir, args.calib_frames, size=(w, h))
    path = build_engine(args.onnx, args.precision, size, calib_frames=frames)
    print(f"engine: {path}")
    return 0
