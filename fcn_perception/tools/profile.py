"""Where inference time goes, per operator type, on ONNX Runtime and OpenVINO (``bench --profile``).

Both runtimes report their own per-node times: ONNX Runtime's profiler (a Chrome-trace JSON of every
node run) and OpenVINO's performance counters (``PERF_COUNT``: real time per executed node). Times are
summed by operator type and divided by the number of runs: milliseconds per frame.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def _frame(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)


def onnxruntime_ops(onnx_path: str | Path, size: tuple[int, int], threads: int = 0, runs: int = 20, warmup: int = 3) -> dict[str, float]:
    import onnxruntime as ort

    x = _frame(size)
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or (os.cpu_count() or 1)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for _ in range(warmup + runs):
            sess.run(None, {name: x})
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)  # (node, op) -> its time in each run
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_node[(e["name"], e["args"]["op_name"])].append(e["dur"] / 1e3)
    per_op: dict[str, float] = defaultdict(float)
    for (_, op), ts in per_node.items():
        per_op[op] += sum(ts[warmup:]) / runs  # the warm-up runs (lazy allocations) left out
    return dict(per_op)


def openvino_ops(onnx_path: str | Path, size: tuple[int, int], threads: int = 0, runs: int = 20, precision: str = "auto") -> dict[str, float]:
    from fcn_perception.inference.openvino_backend import HINTS, core

    model = core().read_model(str(onnx_path))
    w, h = size
    model.reshape({model.inputs[0].get_any_name(): [1, 3, h, w]})
    props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or (os.cpu_count() or 1), "PERF_COUNT": True}
    if HINTS.get(precision):
        props["INFERENCE_PRECISION_HINT"] = HINTS[precision]
    compiled = core().compile_model(model, "CPU", props)
    req = compiled.create_infer_request()
    x = _frame(size)
    for _ in range(3):
        req.infer({0: x})
    per_op: dict[str, float] = defaultdict(float)
    for _ in range(runs):
        req.infer({0: x})
        for info in req.get_profiling_info():
            per_op[f"{info.node_type} ({info.exec_type})"] += info.real_time.total_seconds() * 1e3
    return {op: t / runs for op, t in per_op.items()}


def top_ops(per_op: dict[str, float], n: int = 12) -> list[tuple[str, float, float]]:
    """(operator, ms per frame, share of the total) for the ``n`` costliest."""
    total = sum(per_op.values()) or 1.0
    return [(op, round(ms, 3), round(ms / total, 3)) for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])[:n]]


def profile(onnx_path: str | Path, size: tuple[int, int], threads: int = 0, runs: int = 20, precision: str = "auto") -> dict:
    """Top operators of one graph on both runtimes (OpenVINO where installed)."""
    from fcn_perception.inference.openvino_backend import available

    out = {"model": Path(onnx_path).name, "size": f"{size[0]}x{size[1]}", "onnxruntime": top_ops(onnxruntime_ops(onnx_path, size, threads, runs))}
    if available():
        out["openvino"] = top_ops(openvino_ops(onnx_path, size, threads, runs, precision))
    return out


def report(res: dict) -> str:
    lines = []
    for runtime in ("onnxruntime", "openvino"):
        if runtime not in res:
            continue
        total = sum(ms for _, ms, _ in res[runtime])
        lines.append(f"{res['model']} {res['size']} on {runtime}: top operators, ms per frame (sum of these {total:.2f})")
        lines += [f"  {op:<40} {ms:7.3f}  {share * 100:5.1f} %" for op, ms, share in res[runtime]]
    return "\n".join(lines)
