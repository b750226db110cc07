"""``fcn-perception eval``: mIoU, per-class IoU and pixel accuracy through the same pipeline the node runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fcn_perception.inference.segmenter import Segmenter
from fcn_perception.training.datasets import LabelReader, load_class_map, open_split, read_pair
from fcn_perception.training.metrics import confidence_histograms, confidence_scores, confusion_matrix, scores


def evaluate(
    segmenter: Segmenter,
    data: str | Path,
    split: str,
    class_map: str | Path = "",
    limit: int = 0,
    progress: bool = True,
    on_frame: Callable[[np.ndarray, np.ndarray, LabelReader], None] | None = None,
) -> tuple[dict, np.ndarray]:
    """Scores at each label's own resolution: the segmenter sizes frames as the node does (model
    height, the frame's aspect, unless a size is forced) and returns masks at the frame's size.
    ``on_frame(mask, label, labels)``: sees every frame's predicted mask and model-id label (eval's
    lane line figures, scene/lane_eval.py)."""
    ds = open_split(data, split)
    labels = LabelReader(ds, segmenter.classes, load_class_map(class_map) if class_map else None)
    pairs = ds.pairs[:limit] if limit else ds.pairs
    n = len(segmenter.classes)
    conf = np.zeros((n, n), np.int64)
    sure = np.zeros((2, 256), np.int64)  # confidence of right and of wrong pixels
    for frame, label in tqdm(pairs, desc=f"eval {split}", disable=not progress):
        rgb, lab = read_pair(frame, label, labels)
        seg = segmenter.segment(rgb)
        pred, target = labels.space.resolve(seg.mask, lab)
        conf += confusion_matrix(pred, target, n)
        if seg.confidence is not None:
            sure += confidence_histograms(seg.confidence, pred, target, n)
        if on_frame is not None:
            on_frame(seg.mask, lab, labels)
    res = scores(conf, segmenter.classes, labels.scored)
    res["confidence"] = confidence_scores(sure) if sure.any() else None
    res["frames"] = len(pairs)
    res["layout"] = ds.layout
    res["unknown_colour_pixels"] = labels.unknown_pixels
    res["backend"] = segmenter.backend_name
    res["model"] = str(segmenter.model_path)
    return res, conf


def plot_confusion(conf: np.ndarray, classes: list[str], path: str | Path) -> None:
    """Row-normalised confusion matrix (recall per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(confidence: dict, path: str | Path, title: str = "") -> None:
    """Reliability diagram: per confidence bin, the share of its pixels that are right (bars) against
    the diagonal a perfectly calibrated model follows, with how many pixels each bin holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = confidence["bins"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    centres = [(b["from"] + b["to"]) / 2 for b in bins]
    width = bins[0]["to"] - bins[0]["from"]
    ax.bar(centres, [b["accuracy"] or 0.0 for b in bins], width=width * 0.9, color="#4c72b0", label="share of pixels right")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    right, wrong, ece = (("n/a" if confidence[k] is None else f"{confidence[k]:.3f}") for k in ("mean_correct", "mean_wrong", "ece"))
    ax.set_title(title or f"mean confidence: right {right}, wrong {wrong}; ECE {ece}", fontsize=9)
    total = sum(b["pixels"] for b in bins) or 1
    ax2.bar(centres, [b["pixels"] / total for b in bins], width=width * 0.9, color="#999999")
    ax2.set_ylabel("share of pixels")
    ax2.set_xlabel("confidence (top class's softmax probability)")
    ax2.set_xlim(0, 1)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def format_report(res: dict) -> str:
    lines = [
        f"frames {res['frames']}  backend {res['backend']}  layout {res['layout']}",
        f"mIoU {res['miou'] * 100:.2f}  pixel accuracy {res['pixel_accuracy'] * 100:.2f}",
    ]
    if res.get("unknown_colour_pixels"):
        lines.append(f"label pixels in no class_dict.csv colour (counted as void): {res['unknown_colour_pixels']}")
    for name, iou in res["per_class_iou"].items():
        lines.append(f"  {name:<12} {'n/a' if iou is None else f'{iou * 100:.2f}'}")
    c = res.get("confidence")
    if c and c["mean_correct"] is not None and c["mean_wrong"] is not None:
        lines.append(f"confidence: right pixels {c['mean_correct']:.3f}, wrong pixels {c['mean_wrong']:.3f} (gap {c['gap']:.3f}), ECE {c['ece']:.3f}")
    if (ln := res.get("lane_lines")) is not None:
        pct = {k: "n/a" if ln[k] is None else f"{ln[k]:.3f}" for k in ("precision", "recall", "median_lateral_error_m")}
        at = "  ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in ln["median_lateral_error_at"].items())
        lines.append(
            f"ego lane boundaries: {ln['matched']} matched of {ln['labelled']} labelled, {ln['published']} published; precision {pct['precision']}"
            f" recall {pct['recall']}; median lateral error {pct['median_lateral_error_m']} m (at {at})"
        )
        paint = {k: "n/a" if ln.get(k) is None else f"{ln[k]:.3f}" for k in ("paint_precision", "paint_recall", "paint_median_lateral_error_m")}
        lines.append(
            f"against the labelled paint: precision {paint['paint_precision']} recall {paint['paint_recall']};"
            f" median lateral distance {paint['paint_median_lateral_error_m']} m"
        )
    return "\n".join(lines)


def write_json(res: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(res, indent=2) + "\n")
