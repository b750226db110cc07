"""``fcn-perception gpu-check``: the one command to run on a GPU machine (the car's computer).

Where TensorRT is installed it builds the fp16 engine (TensorRT 10: flags on the fp32 export; 11:
the fp16 export) and the INT8 engine from the symmetric Q/DQ graph (``quantize --symmetric``,
calibrated on the sample drive's frames at that size), else it runs PyTorch on CUDA in fp16; per
frame size it prints the latency per frame (inference, p50 / p95) and the share of pixels whose class
equals the CPU path's (the shipped INT8 model on OpenVINO or ONNX Runtime). Without a CUDA GPU it
says so in one line and exits 2.

    fcn-perception gpu-check [--sizes 480x360,1280x720] [--frames 50] [--json F]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fcn_perception.tools.args import count_arg, size_arg


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--sizes", default="480x360,1280x720", help="frame sizes WxH, comma-separated")
    sp.add_argument("--frames", type=count_arg(), default=50, help="frames per size and route (the sample drive's, resized)")
    sp.add_argument("--json", default="")


def _time(infer, batches: list[np.ndarray]) -> tuple[list[np.ndarray], dict[str, float]]:
    infer(batches[0])  # warm-up: lazy allocations, kernel choice
    masks, ms = [], []
    for x in batches:
        t = time.perf_counter()
        masks.append(infer(x).mask[0])
        ms.append((time.perf_counter() - t) * 1e3)
    return masks, {"p50_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _routes(size: tuple[int, int], frames_dir: Path, cache: Path) -> dict:
    """name -> backend for this size: TensorRT fp16 and int8 where TensorRT runs, else PyTorch on CUDA."""
    from fcn_perception.inference.backends import create_backend, onnx_for
    from fcn_perception.inference.model_store import default_model_path
    from fcn_perception.inference.tensorrt import versions

    if versions.available():
        from fcn_perception.inference.quantize import quantize_int8
        from fcn_perception.inference.tensorrt.runtime import TensorRTBackend

        qdq = quantize_int8(onnx_for(default_model_path(), *size, cache=cache), cache / f"sym-{size[0]}x{size[1]}.int8.onnx", frames_dir, 16, symmetric=True)
        return {
            "tensorrt-fp16": create_backend("tensorrt", default_model_path(), size, precision="fp16", cache=cache),
            "tensorrt-int8": TensorRTBackend(qdq, "int8", cache=cache, size=size),
        }
    return {"torch-cuda-fp16": create_backend("torch", default_model_path(), size, device="cuda")}


def run(args: argparse.Namespace) -> int:
    import cv2

    from fcn_perception.inference.backends import torch_cuda_available
    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
    from fcn_perception.inference.tensorrt import versions
    from fcn_perception.tools.samples import sample_frames

    if not torch_cuda_available():
        raise ValueError(f"no CUDA GPU here ({versions.unavailable_reason() or 'torch sees no CUDA device'}); run it on the car's computer")
    sizes = [size_arg(s) for s in args.sizes.split(",") if s]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            bgr = sample_frames(size, args.frames)
            frames_dir = Path(tmp) / f"frames-{size[0]}x{size[1]}"
            frames_dir.mkdir()
            for i, f in enumerate(bgr[:16]):
                cv2.imwrite(str(frames_dir / f"{i:03d}.png"), f)
            cpu = Segmenter(SegmenterConfig(backend="auto", device="cpu", input_width=size[0], input_height=size[1]))
            batches = [cpu.preprocess(np.ascontiguousarray(f[..., ::-1])) for f in bgr]
            reference, cpu_ms = _time(cpu.backend.infer, batches)
            rows.append({"size": f"{size[0]}x{size[1]}", "route": f"cpu {cpu.backend_name}", **cpu_ms, "agreement": 1.0})
            for name, backend in _routes(size, frames_dir, Path(tmp)).items():
                masks, ms = _time(backend.infer, batches)
                agree = float(np.mean([np.mean(a == b) for a, b in zip(masks, reference, strict=True)]))
                rows.append({"size": f"{size[0]}x{size[1]}", "route": name, **ms, "agreement": round(agree, 4)})
    for r in rows:
        timing = f"inference p50 {r['p50_ms']:7.2f} ms  p95 {r['p95_ms']:7.2f} ms"
        print(f"{r['size']:>10} {r['route']:<28} {timing}  pixels as the CPU path: {r['agreement'] * 100:.2f} %")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0
