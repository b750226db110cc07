"""Judge a replay's published ego-lane boundaries against labelled lane paint, as the held-out lane
drive is judged: the ``<camera>/lanes/ego_left`` and ``ego_right`` Paths that replay wrote (tracker,
smoothing and bridging included) against each frame's labelled paint on the ground, over 5-15 m
(``scene/lane_eval.py``: precision and recall against the paint, and against a fit to it).

    .venv/bin/python tools/make_sample_drive.py ../shared/data/camvid_lanes /tmp/lane_drive --images val --frames 0
    .venv/bin/fcn-perception replay /tmp/lane_drive --out /tmp/lane_out --params P.yaml   # camera_pose, base_frame
    .venv/bin/python tools/judge_lane_replay.py /tmp/lane_out ../shared/data/camvid_lanes --split val

The drive's frames are the split's in name order (how ``make_sample_drive.py --images`` writes them);
the pose and intrinsics are those the replay used.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.model.classes import CAMVID_CLASSES
from fcn_perception.scene.lane_eval import CAMVID_INTRINSICS, LaneEvalConfig, LaneJudge
from fcn_perception.scene.lane_lines import EGO_LEFT, EGO_RIGHT, LEFT, RIGHT
from fcn_perception.scene.lanes import LANE_CLASS
from fcn_perception.training.datasets import LabelReader, load_class_map, open_split, read_pair


@dataclass
class PathBoundary:
    """A published Path as the judge reads a boundary: y(x) along its poses, its x range, its side."""

    side: int
    xy: np.ndarray

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self.xy[0, 0]), float(self.xy[-1, 0])

    def y(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.xy[:, 0], self.xy[:, 1])


def published(bag: str, camera: str) -> list[dict[int, PathBoundary]]:
    """Per frame, in stamp order: the boundaries published on the camera's ego_left / ego_right."""
    by_stamp: dict[int, dict[int, PathBoundary]] = {}
    sides = {f"{camera}/lanes/ego_left": (EGO_LEFT, LEFT), f"{camera}/lanes/ego_right": (EGO_RIGHT, RIGHT)}
    for m in read_messages(bag, list(sides)):
        stamp = m.msg.header.stamp.sec * 10**9 + m.msg.header.stamp.nanosec
        frame = by_stamp.setdefault(stamp, {})
        if len(m.msg.poses) >= 2:
            position, side = sides[m.topic]
            xy = np.array([[p.pose.position.x, p.pose.position.y] for p in m.msg.poses])
            frame[position] = PathBoundary(side, xy)
    return [by_stamp[s] for s in sorted(by_stamp)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", help="replay's output bag")
    ap.add_argument("data", help="the labelled dataset the drive was made from")
    ap.add_argument("--split", default="val")
    ap.add_argument("--class-map", default="config/class_maps/camvid32_to_lanes.yaml")
    ap.add_argument("--camera", default="/camera_front")
    ap.add_argument("--camera-pose", default="0,0,1.5,0,0,0")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    try:
        frames = published(args.bag, args.camera)
        ds = open_split(args.data, args.split)
        pose = tuple(float(v) for v in args.camera_pose.split(","))
    except (OSError, ValueError) as exc:
        print(f"judge_lane_replay: {exc}", file=sys.stderr)
        return 2
    if len(frames) != len(ds.pairs):
        print(f"judge_lane_replay: {len(frames)} frames with lane Paths in {args.bag}, {len(ds.pairs)} in {args.split}", file=sys.stderr)
        return 2
    classes = [*CAMVID_CLASSES, LANE_CLASS]
    labels = LabelReader(ds, classes, load_class_map(args.class_map))
    judge = LaneJudge(LaneEvalConfig(intrinsics=CAMVID_INTRINSICS, pose=pose))
    for (frame, label), boundaries in zip(ds.pairs, frames, strict=True):
        _, lab = read_pair(frame, label, labels)
        judge.add(None, lab, classes.index(LANE_CLASS), published=boundaries)
    summary = judge.scores.summary()
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
