"""Score the lane-paint pseudo-label rule against frames whose paint is labelled (MODEL.md, "Pseudo-labels").

Inside the labelled road (Road or LaneMarking) of camvid_lanes, the rule's "sure paint" is compared
with the labelled paint (precision, recall, IoU) and its "sure road" is checked for the paint it
would wrongly call road. The teacher is the shipped model unless --teacher names another.

    python tools/pseudo_lane_study.py ../shared/data/camvid_lanes --split val
"""

from __future__ import annotations

import argparse

import numpy as np

from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.training.datasets import LabelReader, load_class_map, open_split, read_pair
from fcn_perception.training.pseudo_lanes import PseudoLaneRule


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--split", default="val")
    ap.add_argument("--class-map", default="config/class_maps/camvid32_to_lanes.yaml")
    ap.add_argument("--teacher", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    seg = Segmenter(SegmenterConfig(model=args.teacher, threads=args.threads, sharpen_lanes=False))  # the teacher as training sees it
    classes = seg.classes
    road, lane = classes.index("Road"), classes.index("LaneMarking")
    ds = open_split(args.data, args.split)
    labels = LabelReader(ds, classes, load_class_map(args.class_map))
    rules = {f"dilate {d}, top-hat > {t}": PseudoLaneRule(255, road, lane, paint_above=t, teacher_dilation=d) for d in (0, 2) for t in (0, 10, 20, 30)}
    paint = {k: [0, 0] for k in rules}  # true, false sure-paint pixels
    sure_road = [0, 0]  # paint pixels in the rule's sure road, its pixels
    n_paint = n_road = 0
    teacher_only = [0, 0]
    for frame, label in ds.pairs:
        rgb, lab = read_pair(frame, label, labels)
        mask = seg.segment(rgb).mask
        inside = (lab == road) | (lab == lane)
        is_paint = lab == lane
        n_paint, n_road = n_paint + int(is_paint.sum()), n_road + int(inside.sum())
        t = inside & (mask == lane)
        teacher_only[0] += int((t & is_paint).sum())
        teacher_only[1] += int((t & ~is_paint).sum())
        for name, rule in rules.items():
            th, area = rule.tophat(rgb), rule.teacher_area(mask)
            sure = inside & area & (th > rule.paint_above)
            paint[name][0] += int((sure & is_paint).sum())
            paint[name][1] += int((sure & ~is_paint).sum())
        default = PseudoLaneRule(255, road, lane)
        r = inside & ~default.teacher_area(mask) & (default.tophat(rgb) <= default.road_at_most)
        sure_road[0] += int((r & is_paint).sum())
        sure_road[1] += int(r.sum())
    print(f"{args.split}: {len(ds.pairs)} frames, {n_paint} paint pixels in {n_road} labelled road pixels; teacher {seg.model_path.name}")
    tp, fp = teacher_only
    print(f"  teacher's LaneMarking alone       precision {tp / (tp + fp):.3f} recall {tp / n_paint:.3f} IoU {tp / (n_paint + fp):.3f}")
    for name, (tp, fp) in paint.items():
        print(f"  sure paint: {name:<22} precision {tp / max(1, tp + fp):.3f} recall {tp / n_paint:.3f} IoU {tp / (n_paint + fp):.3f}")
    print(f"  sure road (default rule): holds {sure_road[0] / n_paint:.3f} of the paint, covers {sure_road[1] / n_road:.3f} of the road")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
