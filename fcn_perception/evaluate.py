"""``fcn-perception eval``: mIoU, per-class IoU and pixel accuracy through the same pipeline the node runs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from .data import camvid_pairs, read_label, read_rgb
from .metrics import confusion_matrix, scores
from .segmenter import Segmenter

EVAL_SIZE = (480, 360)  # (w, h) of the published CamVid results


def evaluate(segmenter: Segmenter, data: str | Path, split: str, limit: int = 0, progress: bool = True) -> tuple[dict, np.ndarray]:
    pairs = camvid_pairs(data, split)
    if limit:
        pairs = pairs[:limit]
    n = len(segmenter.classes)
    conf = np.zeros((n, n), np.int64)
    for frame, label in tqdm(pairs, desc=f"eval {split}", disable=not progress):
        rgb, lab = read_rgb(frame), read_label(label)
        if rgb.shape[1::-1] != EVAL_SIZE:
            rgb = cv2.resize(rgb, EVAL_SIZE, interpolation=cv2.INTER_AREA)
            lab = cv2.resize(lab, EVAL_SIZE, interpolation=cv2.INTER_NEAREST)
        conf += confusion_matrix(segmenter.segment(rgb).mask, lab, n)
    res = scores(conf, segmenter.classes)
    res["frames"] = len(pairs)
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


def format_report(res: dict) -> str:
    lines = [
        f"frames {res['frames']}  backend {res['backend']}",
        f"mIoU {res['miou'] * 100:.2f}  pixel accuracy {res['pixel_accuracy'] * 100:.2f}",
    ]
    for name, iou in res["per_class_iou"].items():
        lines.append(f"  {name:<12} {'n/a' if iou is None else f'{iou * 100:.2f}'}")
    return "\n".join(lines)


def write_json(res: dict, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(res, indent=2) + "\n")
