"""``fcn-perception train``: an FCN from a YAML recipe (config/train_*.yaml), or fine-tuning on one dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", default="", help="override the config's output folder")
    sp.add_argument("--restart", action="store_true", help="ignore last.pt instead of resuming from it")
    sp.add_argument("--init", default="", help="start from this checkpoint (fine-tuning; a different class list gets a new score head)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (dotted keys: augment.crop=[256,256])")
    sp.add_argument("--data", default="", metavar="DIR", help="train on this one dataset folder instead of the config's datasets (a labelling set as it is)")
    sp.add_argument("--split", default="train", help="with --data: the split to train on (an --export-uncertain set: frames)")
    sp.add_argument("--val-split", default="", help="with --data: the split to select on (default: val where it exists, else --split)")
    sp.add_argument("--select-only", action="store_true", help="score the starting model (init) on the selection sets and stop: a run's step 0")


def run(args: argparse.Namespace) -> int:
    import yaml

    from fcn_perception.training.train import TrainConfig, select_only, train

    if not Path(args.config).is_file():
        raise FileNotFoundError(f"training config not found: {args.config}")
    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    for item in args.set:
        key, _, value = item.partition("=")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:  # dotted keys; a number indexes a list (datasets.1.share=0.3)
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = yaml.safe_load(value)
        else:
            node[leaf] = yaml.safe_load(value)
    if args.out:
        raw["out"] = args.out
    if args.init:
        raw["init"] = args.init
    if args.data:  # one dataset folder as it is (a labelling set from --export-uncertain, say)
        raw["datasets"] = [_dataset_entry(Path(args.data), args.split, args.val_split)]
    cfg = TrainConfig.from_dict(raw)
    if args.select_only:
        if not cfg.init:
            raise ValueError("--select-only scores the starting model: set init (or --init)")
        select_only(cfg)
        return 0
    best = train(cfg, resume=not args.restart)
    print(f"best checkpoint: {best}")
    return 0


def _dataset_entry(root: Path, split: str, val_split: str) -> dict:
    """The config's datasets entry for ``--data``: selection on ``val_split``, else on the folder's
    ``val`` split where there is one, else (said on the console) on the training frames themselves."""
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    if not val_split:
        val_split = "val" if (root / "val").is_dir() else split
        if val_split == split:
            print(f"train: {root} has no val split; selecting on {split!r}, the training frames (add {root}/val/images and /labels for a fair choice)")
    return {"path": str(root), "train_split": split, "val_split": val_split}
