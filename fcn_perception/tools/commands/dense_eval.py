"""``fcn-perception dense-eval``: the shift-and-stitch study against learned upsampling (FCN paper, section 3.2)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fcn_perception.tools.args import count_arg
from fcn_perception.tools.commands.common import model_args


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--data", required=True)
    sp.add_argument("--split", default="val")
    sp.add_argument("--limit", type=count_arg(0), default=0, help="only the first N frames (0: all)")
    sp.add_argument("--json", default="")
    model_args(sp, backend=False)


def run(args: argparse.Namespace) -> int:
    """Val mIoU and time of the stride-32 path: bilinear vs shift-and-stitch (both routes) vs FCN-8s."""
    import numpy as np
    import torch

    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.model.fcn import load_model

    try:
        from fcn_perception.studies.shift_stitch import coarse_scores, dense_predict, dilated, upsample_to
    except ImportError:
        raise ValueError("dense-eval is a study, not part of the installed package: run it from a source checkout") from None
    from fcn_perception.training.datasets import LabelReader, open_split, read_pair
    from fcn_perception.training.metrics import confusion_matrix, scores
    from fcn_perception.training.patches import normalize

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = load_model(resolve_model(args.model))
    ds = open_split(args.data, args.split)
    labels = LabelReader(ds, model.cfg.classes)
    pairs = ds.pairs[: args.limit or None]
    n = model.cfg.num_classes
    dense_nets = {f: dilated(model, f) for f in (2, 4)}

    methods = {
        "stride-32 + bilinear (FCN-32s path)": lambda x: upsample_to(coarse_scores(model, x), x, 32),
        "shift-and-stitch f=2 (dilated, stride 16) + bilinear": lambda x: upsample_to(coarse_scores(dense_nets[2], x), x, 16),
        "shift-and-stitch f=4 (dilated, stride 8) + bilinear": lambda x: upsample_to(coarse_scores(dense_nets[4], x), x, 8),
        "shift-and-stitch f=2 (f^2 shifted passes) + bilinear": lambda x: dense_predict(model, x, 2, "shift_stitch"),
        f"{model.cfg.variant} learned upsampling + skips": model,
    }
    rows = []
    for name, fn in methods.items():
        conf = np.zeros((n, n), np.int64)
        times = []
        with torch.no_grad():
            for frame, label in pairs:
                rgb, lab = read_pair(frame, label, labels)
                x = normalize(rgb, model.cfg.mean, model.cfg.std)[None]
                t = time.perf_counter()
                logits = fn(x)
                times.append((time.perf_counter() - t) * 1e3)
                conf += confusion_matrix(logits.argmax(1)[0].numpy(), lab, n)
        res = scores(conf, model.cfg.classes)
        rows.append({"method": name, "miou": res["miou"], "road_iou": res["per_class_iou"]["Road"], "ms_p50": float(np.median(times))})
        print(f"{name:<58} mIoU {res['miou'] * 100:5.1f}  Road {res['per_class_iou']['Road'] * 100:5.1f}  {np.median(times):7.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": len(pairs), "rows": rows}, indent=2) + "\n")
    return 0
