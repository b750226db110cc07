"""Peer networks from torchvision, timed the way ours is: ONNX Runtime or OpenVINO on the CPU (or
torch), same input size, same thread count, same OpenVINO settings as ours (latency hint). On
OpenVINO each peer is timed in fp32 and, where the CPU has it, bf16 (interleaved), and its faster is
its figure: the peer on its fastest runtime, as a user would run it.

Runs in the optional benchmark environment (torch 2.14.1 + torchvision 0.29.1, `make bench-env`),
which the main environment cannot share; ``fcn-perception bench`` calls it as a subprocess.
Weights are irrelevant to speed, so the peers are built untrained (nothing is downloaded).

    .venv-bench/bin/python -m fcn_perception.studies.peers --size 480x360 --frames 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def build(name: str, num_classes: int = 11):
    import torch
    from torchvision.models import segmentation as seg

    if name == "lraspp_mobilenet_v3_large":
        net = seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    elif name == "fcn_resnet50":
        net = seg.fcn_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
    else:
        raise ValueError(name)

    class Head(torch.nn.Module):  # torchvision returns a dict; time logits -> class ids like ours
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)["out"].argmax(1).to(torch.uint8)

    return Head().eval()


def export(name: str, size: tuple[int, int], path: str) -> str:
    import torch

    w, h = size
    x = torch.zeros(1, 3, h, w)
    torch.onnx.export(build(name), (x,), path, opset_version=17, dynamo=False, input_names=["image"], output_names=["mask"])
    return path


def time_peer(name: str, size: tuple[int, int], frames: int, backend: str, threads: int) -> dict:
    import torch

    w, h = size
    model = build(name)
    x = np.random.default_rng(0).standard_normal((1, 3, h, w)).astype(np.float32)
    if backend in ("onnxruntime", "openvino"):
        with tempfile.TemporaryDirectory() as tmp:
            path = export(name, size, os.path.join(tmp, f"{name}.onnx"))
            if backend == "onnxruntime":
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads = threads or (os.cpu_count() or 1)
                sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

                def run():
                    return sess.run(None, {"image": x})

                times = _time(run, frames)
            else:
                return _time_openvino(path, x, frames, threads)
    else:
        if threads:
            torch.set_num_threads(threads)
        xt = torch.from_numpy(x)
        with torch.inference_mode():
            times = _time(lambda: model(xt), frames)
    return {"end_to_end_ms": _stats(times), "backend": backend, "precision": "fp32"}


def _time_openvino(path: str, x: np.ndarray, frames: int, threads: int) -> dict:
    """fp32 and (where the CPU has it) bf16, alternated in rounds; the faster's figures, and both."""
    import openvino as ov

    core = ov.Core()
    hints = ["f32", "bf16"] if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else ["f32"]
    runs = {}
    for hint in hints:
        props = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads or (os.cpu_count() or 1), "INFERENCE_PRECISION_HINT": hint}
        request = core.compile_model(path, "CPU", props).create_infer_request()
        runs[hint] = lambda request=request: request.infer({0: x})
    times: dict[str, list[float]] = {h: [] for h in hints}
    for _ in range(2):
        for hint, run in runs.items():
            times[hint] += _time(run, max(1, frames // 2))
    by = {("fp32" if h == "f32" else h): _stats(t) for h, t in times.items()}
    best = min(by, key=lambda p: by[p]["p50"])
    return {"end_to_end_ms": by[best], "backend": "openvino", "precision": best, "by_precision": by}


def _stats(times: list[float]) -> dict:
    return {"p50": round(float(np.median(times)), 2), "p95": round(float(np.percentile(times, 95)), 2)}


def _time(fn, frames: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="480x360")
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "openvino", "torch"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--peers", nargs="*", default=["lraspp_mobilenet_v3_large", "fcn_resnet50"])
    ap.add_argument("--export", default="", help="only write each peer's ONNX into this folder (for bench --profile)")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    if args.export:
        os.makedirs(args.export, exist_ok=True)
        json.dump({name: export(name, (w, h), os.path.join(args.export, f"{name}.onnx")) for name in args.peers}, sys.stdout)
        return 0
    res = {name: time_peer(name, (w, h), args.frames, args.backend, args.threads) for name in args.peers}
    json.dump(res, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
