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
