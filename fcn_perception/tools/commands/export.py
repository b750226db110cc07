"""``fcn-perception export``: a checkpoint to ONNX (the class ids and confidence in the graph)."""

from __future__ import annotations

import argparse

from fcn_perception.tools.args import count_arg


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--onnx", required=True)
    sp.add_argument("--height", type=count_arg(0), default=0)
    sp.add_argument("--width", type=count_arg(0), default=0)
    sp.add_argument("--dynamic", action="store_true", help="dynamic batch/height/width")
    sp.add_argument("--model", default="")


def run(args: argparse.Namespace) -> int:
    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.model.export import export_onnx
    from fcn_perception.model.fcn import load_model

    model = load_model(resolve_model(args.model))
    w, h = model.cfg.input_size
    out = export_onnx(model, args.onnx, height=args.height or h, width=args.width or w, dynamic=args.dynamic)
    print(f"wrote {out}")
    return 0
