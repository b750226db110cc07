"""``fcn-perception eval``: mIoU, per-class IoU, pixel accuracy and confidence on a labelled split."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcn_perception.scene.lanes import LANE_CLASS
from fcn_perception.tools.args import count_arg
from fcn_perception.tools.commands.common import camera_args, model_args, segmenter, stated_camera


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data", required=True, help="dataset folder: class_dict.csv + SPLIT/images + SPLIT/labels, or CamVid's SPLIT + SPLITannot")
    sp.add_argument("--split", default="val")
    sp.add_argument("--class-map", default="", help="YAML: dataset class name -> model class name or void")
    sp.add_argument("--json", default="")
    sp.add_argument("--confusion", default="", help="confusion-matrix PNG (default: beside --json)")
    sp.add_argument("--reliability", default="", help="reliability diagram of the confidence, PNG (default: beside --json)")
    sp.add_argument("--limit", type=count_arg(0), default=0, help="only the first N frames (0: all)")
    sp.add_argument(
        "--lanes",
        action="store_true",
        help="also the ego lane boundaries' line figures (labels with lane paint): lateral error at 5/10/15 m, found/missed, on the ground"
        " at --camera-pose with --intrinsics",
    )
    camera_args(sp, "0,0,1.5,0,0,0", " for --lanes")
    model_args(sp)


def run(args: argparse.Namespace) -> int:
    from fcn_perception.training.evaluate import evaluate, format_report, plot_confusion, plot_reliability, write_json

    lanes = _lane_config(args) if args.lanes else None  # refused before the model loads
    seg = segmenter(args)
    judge = _LaneFigures(lanes, seg.classes) if lanes is not None else None
    res, conf = evaluate(seg, args.data, args.split, class_map=args.class_map, limit=args.limit, on_frame=judge)
    if judge is not None and judge.judge is not None:
        res["lane_lines"] = {"pose": list(lanes.pose), "intrinsics": list(lanes.intrinsics), **judge.judge.scores.summary()}
    print(format_report(res))
    if res["per_class_iou"].get(LANE_CLASS, 0.0) is None and not args.class_map:
        print(
            f"note: these labels have no {LANE_CLASS}, so the model's paint on their road counts against Road; where their road"
            " includes the paint (CamVid's SegNet labels), a class map makes it partial:"
            " --class-map config/class_maps/camvid_to_lanes.yaml (MODEL.md, partial labels)"
        )
    if args.json:
        write_json(res, args.json)
        plot = Path(args.confusion or Path(args.json).with_suffix(".confusion.png"))
    else:
        plot = Path(args.confusion) if args.confusion else None
    if plot:
        plot_confusion(conf, seg.classes, plot)
        print(f"confusion matrix: {plot}")
    reliability = args.reliability or (str(Path(args.json).with_suffix(".reliability.png")) if args.json else "")
    if reliability and res["confidence"]:
        plot_reliability(res["confidence"], reliability)
        print(f"reliability diagram: {reliability}")
    return 0


class _LaneFigures:
    """eval's per-frame hook: the ego boundaries of each prediction against its label's, where the
    labels have lane paint (a label set without it, CamVid's SegNet labels, gives no figures)."""

    def __init__(self, cfg, classes: list[str]) -> None:
        from fcn_perception.scene.lane_eval import LaneJudge
        from fcn_perception.scene.lanes import LANE_CLASS

        self.lane_id = classes.index(LANE_CLASS) if LANE_CLASS in classes else None
        self.judge = LaneJudge(cfg) if self.lane_id is not None else None

    def __call__(self, mask, label, labels) -> None:
        if self.judge is not None and self.lane_id not in labels.scored:
            self.judge = None  # this split's labels have no paint
        if self.judge is not None:
            self.judge.add(mask, label, self.lane_id)


def _lane_config(args: argparse.Namespace):
    from fcn_perception.scene.lane_eval import LaneEvalConfig

    camera = stated_camera(args)
    if camera is None:
        raise ValueError("--lanes needs --camera-pose")
    return LaneEvalConfig(intrinsics=camera[0], pose=camera[1])
