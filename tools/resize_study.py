"""Does the filter that shrinks a camera's frame to the network's size change the masks?

OpenCV's area averaging (INTER_AREA) is exact and fast for whole factors (1280x720 -> 640x360: 0.2 ms)
but takes 2-9 ms for any other ratio (640x480 -> 480x360, 960x540 -> 640x360, 2048x1024 -> 704x360),
a tenth of a frame's CPU outside the network. This study serves every labelled frame of a split as a
camera of ``--camera`` size would send it (the frame enlarged bicubically to that size, so the
network's resize really shrinks it) through the shipped model twice: once shrunk with area averaging
at any ratio, once with the filter ``preprocess.resize_rgb`` uses, and scores both against the labels.

    python tools/resize_study.py ../shared/data/camvid --split val --camera 640x480
    python tools/resize_study.py ../shared/data/camvid_lanes --split val --camera 640x480 \
        --class-map config/class_maps/camvid32_to_lanes.yaml
    python tools/resize_study.py ../shared/data/cityscapes --split train --last 150 --stretch 2 \
        --camera 2048x1024 --class-map config/class_maps/cityscapes_to_lanes.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.inference import segmenter as segmenter_module
from fcn_perception.inference.preprocess import check_rgb, resize_rgb
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.tools.args import size_arg
from fcn_perception.training.datasets import LabelReader, load_class_map, open_split, read_pair
from fcn_perception.training.metrics import confusion_matrix, scores


def area_resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The filter before: area averaging at any ratio when shrinking."""
    check_rgb(rgb)
    w, h = size
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if rgb.shape[0] > h else cv2.INTER_LINEAR)


FILTERS = {"area at any ratio (before)": area_resize, "resize_rgb (now)": resize_rgb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--last", type=int, default=0, help="only the split's last N frames (Cityscapes: the 150 set aside)")
    ap.add_argument("--stretch", type=float, default=1.0, help="width stretch of a squashed copy (Cityscapes: 2)")
    ap.add_argument("--camera", type=size_arg, required=True, help="WxH the frames are served at")
    ap.add_argument("--class-map", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    seg = Segmenter(SegmenterConfig(threads=args.threads))
    ds = open_split(args.data, args.split)
    labels = LabelReader(ds, seg.classes, load_class_map(args.class_map) if args.class_map else None)
    pairs = ds.pairs[-args.last :] if args.last else ds.pairs
    n = len(seg.classes)
    conf = {k: np.zeros((n, n), np.int64) for k in FILTERS}
    agree, pixels, took = dict.fromkeys(FILTERS, 0), 0, dict.fromkeys(FILTERS, 0.0)
    for frame, label in pairs:
        rgb, lab = read_pair(frame, label, labels)
        if args.stretch != 1.0:
            size = (round(rgb.shape[1] * args.stretch), rgb.shape[0])
            rgb, lab = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR), cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
        camera = cv2.resize(rgb, args.camera, interpolation=cv2.INTER_CUBIC)
        masks = {}
        for name, resize in FILTERS.items():
            segmenter_module.resize_rgb = resize
            t = time.perf_counter()
            masks[name] = seg.segment(camera, (lab.shape[1], lab.shape[0])).mask
            took[name] += time.perf_counter() - t
            pred, target = labels.space.resolve(masks[name], lab)
            conf[name] += confusion_matrix(pred, target, n)
        for name, mask in masks.items():
            agree[name] += int((mask == masks[next(iter(FILTERS))]).sum())
        pixels += lab.size
    print(f"{args.data} {args.split}{f'[-{args.last}:]' if args.last else ''}, {len(pairs)} frames served at {args.camera[0]}x{args.camera[1]}:")
    for name in FILTERS:
        res = scores(conf[name], seg.classes, labels.scored)
        per = {c: v for c, v in res["per_class_iou"].items() if v is not None}
        lane = f", LaneMarking {100 * per['LaneMarking']:.2f}" if "LaneMarking" in per else ""
        print(
            f"  {name:28s} mIoU {100 * res['miou']:.2f}, Road {100 * per['Road']:.2f}{lane}; masks equal to the first {100 * agree[name] / pixels:.2f} %;"
            f" {1e3 * took[name] / len(pairs):.1f} ms a frame (resize + network)"
        )


if __name__ == "__main__":
    main()
