"""Confusion-matrix metrics with the convention of published CamVid results (void ignored)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """``conf[t, p]``: pixels of true class t predicted as p; targets outside [0, num_classes) are void."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    target = np.asarray(target).ravel().astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target sizes differ: {pred.shape} vs {target.shape}")
    valid = (target >= 0) & (target < num_classes)
    idx = target[valid] * num_classes + np.clip(pred[valid], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(conf: np.ndarray, class_names: list[str] | tuple[str, ...], scored: list[int] | None = None) -> dict:
    """mIoU over classes present in the ground truth or the predictions, per-class IoU, pixel accuracy.

    ``scored``: the classes the labels can express (None: all). A class the data never labels (a
    model's LaneMarking on data whose paint is Road) has an IoU of stray predictions only: it is
    reported as None and left out of the mean; those predictions still count as errors of the true
    class.
    """
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    union = conf.sum(0) + conf.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    if scored is not None:
        iou[np.setdiff1d(np.arange(len(iou)), scored)] = np.nan
    total = conf.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else 0.0,
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou, strict=True)},
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
    }


def confidence_histograms(confidence: np.ndarray, pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(2, 256) pixel counts of each uint8 confidence value (255 = 1.0): row 0 correctly classified
    pixels, row 1 wrong ones; void targets are left out as in :func:`confusion_matrix`."""
    conf, pred, target = (np.asarray(a).ravel() for a in (confidence, pred, target))
    valid = (target >= 0) & (target < num_classes)
    right = pred[valid] == target[valid]
    values = conf[valid].astype(np.int64)
    return np.stack([np.bincount(values[right], minlength=256), np.bincount(values[~right], minlength=256)])


def confidence_scores(hist: np.ndarray, bins: int = 10) -> dict:
    """Does the confidence mean something: mean confidence of correct and of wrong pixels and their
    gap, and calibration — per bin of confidence, the share of its pixels that are right (a
    reliability diagram) and the expected calibration error (pixel-weighted |accuracy - confidence|)."""
    hist = hist.astype(np.float64)
    values = np.arange(256) / 255.0
    n_right, n_wrong = hist[0].sum(), hist[1].sum()
    mean_right = float(hist[0] @ values / n_right) if n_right else None
    mean_wrong = float(hist[1] @ values / n_wrong) if n_wrong else None
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    table, ece, total = [], 0.0, n_right + n_wrong
    for b in range(bins):
        sel = which == b
        right, wrong = hist[0][sel].sum(), hist[1][sel].sum()
        count = right + wrong
        if not count:
            table.append({"from": float(edges[b]), "to": float(edges[b + 1]), "pixels": 0, "accuracy": None, "confidence": None})
            continue
        mean_conf = float((hist[0][sel] + hist[1][sel]) @ values[sel] / count)
        table.append({"from": float(edges[b]), "to": float(edges[b + 1]), "pixels": int(count), "accuracy": float(right / count), "confidence": mean_conf})
        ece += count / total * abs(right / count - mean_conf)
    gap = mean_right - mean_wrong if mean_right is not None and mean_wrong is not None else None
    return {"mean_correct": mean_right, "mean_wrong": mean_wrong, "gap": gap, "ece": float(ece) if total else None, "bins": table}
