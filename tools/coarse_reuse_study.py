"""What a frame loses when it takes the stride-32 class scores of an earlier frame (``coarse_reuse_ms``).

Every labelled frame of a split whose files are named ``SEQUENCE_NUMBER`` (the frame's number in its
video, as CamVid's are) is segmented as the node would: once on its own, as ``eval`` does, and once
per ``--ages`` after the frame that many video frames earlier, through the same Segmenter and the
camera's kept scores (``CoarseScores``). Only frames whose every earlier frame is in ``--frames``
count, so all rows score the same frames.

    python tools/coarse_reuse_study.py ../shared/data/camvid --class-map config/class_maps/camvid_to_lanes.yaml
    python tools/coarse_reuse_study.py ../shared/data/camvid_lanes --frames ../shared/data/camvid/val \\
        --class-map config/class_maps/camvid32_to_lanes.yaml
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.inference.coarse_reuse import CoarseScores
from fcn_perception.inference.frames import read_rgb
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.training.datasets import LabelReader, load_class_map, open_split, read_pair
from fcn_perception.training.metrics import confusion_matrix, scores

NAME = re.compile(r"^(.+)_(\d+)$")


def earlier(frame: Path, frames: Path, age: int) -> Path | None:
    """The frame ``age`` video frames before ``frame`` in ``frames`` (any image suffix), or None."""
    m = NAME.match(frame.stem)
    if not m:
        return None
    stem = f"{m.group(1)}_{int(m.group(2)) - age:0{len(m.group(2))}d}"
    return next((p for p in (frames / f"{stem}{s}" for s in (".png", ".jpg")) if p.exists()), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", default="", help="where the earlier frames are (default: beside the split's frames)")
    ap.add_argument("--fps", type=float, default=30.0, help="the video's frame rate (CamVid: 30)")
    ap.add_argument("--ages", default="2,4", help="video frames between the reused scores' frame and the labelled one")
    ap.add_argument("--class-map", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    ages = [int(a) for a in args.ages.split(",")]
    seg = Segmenter(SegmenterConfig(threads=args.threads, coarse_reuse_ms=1000.0 * max(ages) / args.fps + 1.0))
    if not seg.backend.reuses_coarse:
        sys.exit(f"coarse_reuse_study: the {seg.backend_name} backend computes every layer for every frame")
    ds = open_split(args.data, args.split)
    labels = LabelReader(ds, seg.classes, load_class_map(args.class_map) if args.class_map else None)
    n = len(seg.classes)
    conf = {0: np.zeros((n, n), np.int64), **{a: np.zeros((n, n), np.int64) for a in ages}}
    used = 0
    for frame, label in ds.pairs:
        sources = {a: earlier(Path(frame), Path(args.frames) if args.frames else Path(frame).parent, a) for a in ages}
        if not all(sources.values()):
            continue
        used += 1
        rgb, lab = read_pair(frame, label, labels)
        masks = {0: seg.segment(rgb).mask}
        for a, source in sources.items():
            cam = CoarseScores()
            seg.segment(read_rgb(source), None, cam, 0.0)
            masks[a] = seg.segment(rgb, None, cam, a / args.fps).mask
            assert cam.reused == 1, f"{frame}: the scores of {source} were not reused"
        for a, mask in masks.items():
            conf[a] += confusion_matrix(*labels.space.resolve(mask, lab), n)
    print(f"{args.data} {args.split}: {used} of {len(ds.pairs)} frames have every earlier frame; {seg.backend_name}, {seg.precision}")
    for a, c in conf.items():
        res = scores(c, seg.classes, labels.scored)
        per = ", ".join(f"{k} {100 * v:.1f}" for k, v in res["per_class_iou"].items() if v is not None)
        what = "its own stride-32 scores (eval)" if a == 0 else f"the stride-32 scores of {1000 * a / args.fps:.0f} ms before"
        print(f"  {what}: mIoU {100 * res['miou']:.2f} ({per})")


if __name__ == "__main__":
    main()
