"""``fcn-perception``: the registry of commands. Each lives in its own module (its arguments and its
run): ``tools/commands/`` for the short ones, the tool module itself for demo, bench and load."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from fcn_perception.tools import bench, demo, load
from fcn_perception.tools.commands import build_engine, compare, dense_eval, evaluate, export, gpu_check, quantize, replay, segment, train

#: name, help, (its arguments, its run), in the order --help lists them
COMMANDS: tuple[tuple[str, str, tuple[Callable, Callable]], ...] = (
    ("train", "train an FCN from a YAML config", (train.add_arguments, train.run)),
    ("eval", "mIoU / per-class IoU / pixel accuracy on a labelled split (SegNet or generic layout)", (evaluate.add_arguments, evaluate.run)),
    ("export", "export a checkpoint to ONNX", (export.add_arguments, export.run)),
    ("quantize", "INT8 (QDQ) ONNX calibrated on real frames (--symmetric: the graph TensorRT takes)", (quantize.add_arguments, quantize.run)),
    ("build-engine", "build a TensorRT engine from an ONNX export (GPU + TensorRT only)", (build_engine.add_arguments, build_engine.run)),
    (
        "gpu-check",
        "on a GPU machine: TensorRT fp16/int8 engines (else PyTorch CUDA fp16), latency per size, agreement with the CPU path",
        (gpu_check.add_arguments, gpu_check.run),
    ),
    ("segment", "segment images, videos or folders of them: overlays, id and colour masks, overlay videos, a legend", (segment.add_arguments, segment.run)),
    ("replay", "run the pipeline over rosbag2 recordings (one, or a corpus) and write bags with the outputs", (replay.add_arguments, replay.run)),
    ("compare", "where a candidate model differs from the baseline on recorded drives (report.json + report.html)", (compare.add_arguments, compare.run)),
    ("demo", "node + sample drive over DDS, outputs recorded into --out", (demo.add_arguments, demo.run_args)),
    ("bench", "per-stage latency, FPS, memory and hardware floor on the sample drive", (bench.add_arguments, bench.run_args)),
    ("load", "the node process under N cameras at a fixed rate: soak, overload, multi-camera figures", (load.add_arguments, load.run_args)),
    ("dense-eval", "shift-and-stitch vs learned upsampling on a labelled split", (dense_eval.add_arguments, dense_eval.run)),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fcn-perception", description="FCN road-scene segmentation: training, evaluation and tools")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text, (add_arguments, run) in COMMANDS:
        sp = sub.add_parser(name, help=help_text)
        add_arguments(sp)
        sp.set_defaults(func=run)
    return p


def _interrupt_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, a CI timeout) unwinds like Ctrl-C, so every ``finally`` and
    context manager runs: a replay or export that is stopped leaves no partial file behind."""
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _interrupt_on_sigterm()
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"fcn-perception {args.command}: error: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fcn-perception {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
