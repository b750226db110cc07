"""``precision: auto`` on OpenVINO, chosen by measuring on this CPU — once, then cached.

What is fastest differs from CPU to CPU: INT8 wins where there is VNNI (and, less, on AVX2 alone),
bf16 can win on AMX, fp32 where neither helps (BENCHMARKS.md). So the first start on a CPU serves
with INT8 at once and times the candidates beside it, in the background; the winner is kept in the
cache directory, keyed by the CPU, the runtime's version, the model files and the input size, and
later starts (and replays on that machine) take it directly. No CPU is guessed from its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcn_perception.cpu import this_cpu
from fcn_perception.files import json_table, put_json_entry
from fcn_perception.inference.model_store import cache_dir, cache_file, shipped_digest

#: Tried in this order; bf16 only where OpenVINO reports the CPU can run it.
CANDIDATES = ("int8", "fp32", "bf16")


@dataclass
class Choice:
    """The precision ``auto`` runs, and how it was decided (for the log and the diagnostics)."""

    precision: str
    how: str  # "measured", "cached" or "default (measuring)"
    ms: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        timed = ", ".join(f"{p} {ms:.1f} ms" for p, ms in sorted(self.ms.items(), key=lambda kv: kv[1]))
        return f"auto = {self.precision} ({self.how}{': ' + timed if timed else ''})"


def key(models: dict[str, Path], size: tuple[int, int], threads: int) -> str:
    """The cache key of one measurement; ``models``: shipped files, named by their manifest digests
    (resolve_model has checked them against the files: no second read of 30 MB at every start)."""
    from fcn_perception.inference.openvino_backend import runtime

    parts = [this_cpu().signature(), runtime().get_version(), f"{size[0]}x{size[1]}", f"threads={threads}"]
    parts += [f"{p}={shipped_digest(path)[:16]}" for p, path in sorted(models.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _store_path(cache: str | Path) -> Path:
    return cache_file(cache_dir(cache), "openvino", "auto_precision.json")


def cached(cache: str | Path, k: str) -> Choice | None:
    """The choice measured before under this key, or None (never measured, or an unreadable file)."""
    try:
        entry = json_table(_store_path(cache))[k]
        return Choice(entry["precision"], "cached", {p: float(v) for p, v in entry["ms"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def store(cache: str | Path, k: str, choice: Choice) -> None:
    entry = {"precision": choice.precision, "ms": choice.ms, "cpu": this_cpu().signature(), "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    put_json_entry(_store_path(cache), k, entry)  # two nodes measuring at once: the last whole file wins


class Stopped(RuntimeError):
    """Measuring was stopped (the node is shutting down) before it finished."""


def measure(
    models: dict[str, Path],
    size: tuple[int, int],
    threads: int,
    cache: str | Path = "",
    rounds: int = 3,
    runs: int = 8,
    exclusive=None,
    stop: threading.Event | None = None,
) -> Choice:
    """Time each candidate (its own compiled model) on a random frame, interleaved round by round so
    a drift in the machine's speed hits them alike; the median of each one's rounds wins.
    ``exclusive``: held around each timing run (the Segmenter's inference lock: no frame inferred
    meanwhile); ``stop``: checked between compiles and runs — a compile cannot be interrupted, and a
    process that exits during one aborts, so a shutdown waits for at most one."""
    from fcn_perception.inference.openvino_backend import OpenVinoBackend, cpu_has_bf16

    exclusive = exclusive or contextlib.nullcontext()
    stop = stop or threading.Event()
    tried = [p for p in CANDIDATES if p in models and (p != "bf16" or cpu_has_bf16())]
    backends = {}
    for p in tried:
        if stop.is_set():
            raise Stopped("stopped before every precision was compiled")
        backends[p] = OpenVinoBackend(models[p], size, threads, p, cache)
    x = np.random.default_rng(0).integers(0, 256, (1, size[1], size[0], 3), np.uint8)  # as served: uint8 frames
    for b in backends.values():
        b.infer_rgb(x)  # lazy allocations and kernel selection
    per_round: dict[str, list[float]] = {p: [] for p in tried}
    for _ in range(rounds):
        for p, b in backends.items():
            if stop.is_set():
                raise Stopped("stopped while timing")
            ts = []
            with exclusive:
                for _ in range(runs):
                    t = time.perf_counter()
                    b.infer_rgb(x)
                    ts.append((time.perf_counter() - t) * 1e3)
            per_round[p].append(float(np.median(ts)))
    ms = {p: round(float(np.median(v)), 2) for p, v in per_round.items()}
    return Choice(min(ms, key=ms.get), "measured", ms)
