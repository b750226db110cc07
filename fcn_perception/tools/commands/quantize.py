"""``fcn-perception quantize``: INT8 Q/DQ ONNX calibrated on real frames (ONNX Runtime's, or TensorRT's with --symmetric)."""

from __future__ import annotations

import argparse

from fcn_perception.tools.args import count_arg


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--onnx", required=True, help="fp32 ONNX from `export`")
    sp.add_argument("--out", required=True)
    sp.add_argument("--calib-dir", required=True, help="folder of real frames (e.g. CamVid train/)")
    sp.add_argument("--frames", type=count_arg(), default=100)
    sp.add_argument("--symmetric", action="store_true", help="signed INT8 with zero points 0: the Q/DQ graph TensorRT builds INT8 engines from")


def run(args: argparse.Namespace) -> int:
    from fcn_perception.inference.quantize import quantize_int8

    out = quantize_int8(args.onnx, args.out, args.calib_dir, args.frames, symmetric=args.symmetric)
    print(f"wrote {out}")
    return 0
