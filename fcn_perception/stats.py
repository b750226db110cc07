"""Figures reported alike everywhere: the one percentile helper (diagnostics, replay summaries, bench
and load), and this process's share of the CPU (diagnostics)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import numpy as np


def percentiles(values: Iterable[float], qs: tuple[int, ...] = (50, 95, 99), digits: int = 3) -> dict[str, float]:
    """``{"p50": ..., "p95": ..., ...}``; NaN for no values (a camera that got nothing through is a
    figure, not an error)."""
    arr = np.asarray(list(values), np.float64)
    if arr.size == 0:
        arr = np.array([np.nan])
    return {f"p{q}": round(float(np.percentile(arr, q)), digits) for q in qs}


class CpuShare:
    """This process's CPU since the last :meth:`take`, as a percentage of the cores it may run on.
    Near 100 while frames are dropped says the CPU is what bounds the node; well under it, that
    something else holds the frames up (BENCHMARKS.md, 2026-12-07, twelfth sitting)."""

    def __init__(self) -> None:
        self._cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        self._at = (time.monotonic(), time.process_time())

    def take(self) -> float:
        (t0, cpu0), self._at = self._at, (time.monotonic(), time.process_time())
        return round(100.0 * (self._at[1] - cpu0) / max(self._at[0] - t0, 1e-3) / self._cores, 1)
