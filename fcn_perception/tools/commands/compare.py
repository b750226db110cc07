"""``fcn-perception compare``: where a candidate model differs from the baseline on recorded drives; a CI gate."""

from __future__ import annotations

import argparse

from fcn_perception.tools.args import number_arg
from fcn_perception.tools.commands.common import uncertain_args


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("inputs", nargs="+", help="recordings or folders of them")
    sp.add_argument("--baseline", required=True, help="the model in the car (.pt or .onnx)")
    sp.add_argument("--candidate", required=True, help="the new model (.pt or .onnx)")
    sp.add_argument("--report", required=True, metavar="DIR", help="report.json and report.html go here")
    sp.add_argument("--min-agreement", type=number_arg(0.0, 1.0), default=None, help="exit 1 when the mean drivable-area IoU is below this")
    sp.add_argument("--min-frame-agreement", type=number_arg(0.0, 1.0), default=None, help="exit 1 when any frame's drivable-area IoU is below this")
    sp.add_argument("--params", default="", help="the car's parameter YAML (drivable classes, polygons, cameras' poses), as replay takes it")
    uncertain_args(sp, top=8, what="the N frames that changed most (shown in the page; with --export-uncertain also written, spread by --min-gap)")


def run(args: argparse.Namespace) -> int:
    from fcn_perception.params.node_config import node_config
    from fcn_perception.tools import compare

    return compare.run(
        args.inputs,
        args.baseline,
        args.candidate,
        args.report,
        args.min_agreement,
        args.min_frame_agreement,
        args.top,
        export_uncertain=args.export_uncertain or None,
        min_gap_s=args.min_gap,
        cfg=node_config(args.params or None),
    )
