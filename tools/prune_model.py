"""Prune the shipped model's trunk and distil it back toward the original
(``fcn_perception/training/prune.py`` says how and why):

    .venv/bin/python tools/prune_model.py fcn_perception/models/lanes_lite0_fcn4s.pt \
        runs/lanes_lite0p_fcn4s/best.pt --prune 1-5:0.25,6-15:0.125 --minutes 40

then ship the result with ``tools/ship_model.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.inference.frames import FrameReadError
from fcn_perception.model.fcn import load_model, model_from, read_checkpoint, save_checkpoint
from fcn_perception.training.prune import calibration_frames, distil, frame_files, parse_ratios, prune, teacher_class_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"), help="the folder holding camvid/ and cityscapes/")
    ap.add_argument("checkpoint", help="the trained model (.pt), the teacher")
    ap.add_argument("out", help="the pruned checkpoint (.pt)")
    ap.add_argument("--prune", default="1-5:0.25,6-15:0.125", help="BLOCKS:SHARE,... of each block's expanded channels to drop")
    ap.add_argument("--minutes", type=float, default=40.0, help="distillation time (0: pruned and refitted only)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument(
        "--balance",
        type=float,
        default=0.0,
        help="median-frequency class weights of the teacher's classes to this power (0.5: the training recipe's) weigh each pixel; 0: every pixel alike",
    )
    ap.add_argument(
        "--resume",
        default="",
        help="a pruned checkpoint to distil further instead of pruning anew (OUT itself after a stopped run: it is saved every 10 minutes)",
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    try:
        ratios, files, teacher = parse_ratios(args.prune), frame_files(Path(args.data)), load_model(args.checkpoint)
        resumed = read_checkpoint(args.resume) if args.resume else None
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"prune_model: {exc}")
    before = resumed.get("distil_steps", 0) if resumed else 0
    prune_spec = resumed.get("prune", args.prune) if resumed else args.prune
    try:  # a damaged frame in the data: one line, not a traceback
        frames = calibration_frames(files, teacher.cfg) if not resumed or args.balance > 0 else []
        student = model_from(resumed) if resumed else prune(teacher, ratios, frames)

        def save(steps: int) -> None:  # on distillation's clock and at the end
            save_checkpoint(args.out, student, {"pruned_from": str(args.checkpoint), "prune": prune_spec, "distil_steps": before + steps})

        weights = teacher_class_weights(teacher, frames, args.balance) if args.balance > 0 else None
        if weights is not None:
            print("class weights: " + ", ".join(f"{c} {w:.2f}" for c, w in zip(teacher.cfg.classes, weights.tolist(), strict=True)))
        steps = 0
        if args.minutes > 0:  # seeded by the steps before it: a resumed run draws new crops
            steps = distil(student, teacher, files, args.minutes, args.lr, seed=before, save=save, weights=weights)
    except FrameReadError as exc:
        sys.exit(f"prune_model: {exc}")
    save(steps)
    print(f"wrote {args.out}: hidden widths {list(student.cfg.hidden)}, {steps} distillation steps")


if __name__ == "__main__":
    main()
