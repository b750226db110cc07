"""``fcn-perception eval``: mIoU, per-class IoU, pixel accuracy and confidence on a labelled split."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcn_perception.tools.commands.common import model_args, segmenter


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data", required=True, help="dataset folder: class_dict.csv + SPLIT/images + SPLIT/labels, or CamVid's SPLIT + SPLITannot")
    sp.add_argument("--split", default="val")
    sp.add_argument("--class-map", default="", help="YAML: dataset class name -> model class name or void")
    sp.add_argument("--json", default="")
    sp.add_argument("--confusion", default="", help="confusion-matrix PNG (default: beside --json)")
    sp.add_argument("--reliability", default="", help="reliability diagram of the confidence, PNG (default: beside --json)")
    sp.add_argument("--limit", type=int, default=0, help="only the first N frames")
    model_args(sp)


def run(args: argparse.Namespace) -> int:
    from fcn_perception.training.evaluate import evaluate, format_report, plot_confusion, plot_reliability, write_json

    seg = segmenter(args)
    res, conf = evaluate(seg, args.data, args.split, class_map=args.class_map, limit=args.limit)
    print(format_report(res))
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
