"""The one percentile helper: diagnostics, replay summaries, bench and load report the same figures."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def percentiles(values: Iterable[float], qs: tuple[int, ...] = (50, 95, 99), digits: int = 3) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., ...}``; NaN for no values (a camera that got nothing through is a
    figure, not an error)."""
    arr = np.asarray(list(values), np.float64)
    if arr.size == 0:
        arr = np.array([np.nan])
    return {f"p{q}": round(float(np.percentile(arr, q)), digits) for q in qs}
