"""``fcn-perception`` command line: train, eval, export, segment, dense-eval (shift-and-stitch study)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fcn_perception.inference.backends import BACKENDS, PRECISIONS
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.tools.args import size_arg


def _segmenter(args: argparse.Namespace) -> Segmenter:
    w, h = args.size or (0, 0)
    return Segmenter(
        SegmenterConfig(model=args.model or "", backend=args.backend, threads=args.threads, precision=args.precision, input_width=w, input_height=h)
    )


def cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from fcn_perception.training.train import TrainConfig, train

    if not Path(args.config).is_file():
        raise FileNotFoundError(f"training config not found: {args.config}")
    raw = yaml.safe_load(Path(args.config).read_text()) or {}
    for item in args.set:
        key, _, value = item.partition("=")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:  # dotted keys; a number indexes a list (datasets.1.share=0.3)
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(leaf)] = yaml.safe_load(value)
        else:
            node[leaf] = yaml.safe_load(value)
    if args.out:
        raw["out"] = args.out
    if args.init:
        raw["init"] = args.init
    if args.data:  # one dataset folder as it is (a labelling set from --export-uncertain, say)
        raw["datasets"] = [_dataset_entry(Path(args.data), args.split, args.val_split)]
    cfg = TrainConfig.from_dict(raw)
    best = train(cfg, resume=not args.restart)
    print(f"best checkpoint: {best}")
    return 0


def _dataset_entry(root: Path, split: str, val_split: str) -> dict:
    """The config's datasets entry for ``--data``: selection on ``val_split``, else on the folder's
    ``val`` split where there is one, else (said on the console) on the training frames themselves."""
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    if not val_split:
        val_split = "val" if (root / "val").is_dir() else split
        if val_split == split:
            print(f"train: {root} has no val split; selecting on {split!r}, the training frames (add {root}/val/images and /labels for a fair choice)")
    return {"path": str(root), "train_split": split, "val_split": val_split}


def cmd_eval(args: argparse.Namespace) -> int:
    from fcn_perception.training.evaluate import evaluate, format_report, plot_confusion, plot_reliability, write_json

    seg = _segmenter(args)
    res, conf = evaluate(seg, args.data, args.split, class_map=args.class_map, limit=args.limit)
    print(format_report(res))
    if args.json:
        write_json(res, args.json)
        plot = Path(args.confusion or Path(args.json).with_suffix(".confusion.png"))
    else:
        plot = Path(args.confusion) if args.confusion else None
    if plot:
        plot_confusion(conf, seg.classes, plot)
        print(f"confusion matrix: {plot}")
    reliability = args.reliability or (str(Path(args.json).with_suffix(".reliability.png")) if args.json else "")
    if reliability and res["confidence"]:
        plot_reliability(res["confidence"], reliability)
        print(f"reliability diagram: {reliability}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.model.export import export_onnx
    from fcn_perception.model.fcn import load_model

    model = load_model(resolve_model(args.model))
    w, h = model.cfg.input_size
    out = export_onnx(model, args.onnx, height=args.height or h, width=args.width or w, dynamic=args.dynamic)
    print(f"wrote {out}")
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from fcn_perception.inference.quantize import quantize_int8

    out = quantize_int8(args.onnx, args.out, args.calib_dir, args.frames, symmetric=args.symmetric)
    print(f"wrote {out}")
    return 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    """Serialize a TensorRT engine for this GPU into the engine cache (needs TensorRT and CUDA)."""
    from fcn_perception.inference.tensorrt.build import build_engine, calibration_frames
    from fcn_perception.inference.tensorrt.plan import build_plan
    from fcn_perception.inference.tensorrt.versions import trt_major, unavailable_reason

    if reason := unavailable_reason():
        raise ValueError(f"build-engine: {reason}")
    size = (args.width, args.height) if args.width and args.height else None
    plan = build_plan(args.onnx, args.precision, size, trt_major())
    frames = None
    if plan.calibrate:  # TensorRT 10, INT8 from an fp32 graph; 11 and a Q/DQ graph need no frames
        if not args.calib_dir:
            raise ValueError("int8 from an fp32 graph on TensorRT 10 needs --calib-dir with real frames (or give the Q/DQ graph of quantize --symmetric)")
        _, _, h, w = plan.input_shape
        frames = calibration_frames(args.onnx, args.calib_dir, args.calib_frames, size=(w, h))
    path = build_engine(args.onnx, args.precision, size, calib_frames=frames)
    print(f"engine: {path}")
    return 0


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment photos (overlay, id mask, colour mask) and videos (an overlay video at the source's rate),
    plus a legend of class names and colours: the quickest look at what the model sees."""
    import cv2

    from fcn_perception.inference.frames import IMAGE_SUFFIXES
    from fcn_perception.scene.video import VideoOut

    inputs: list[Path] = []
    problems = []
    for src in map(Path, args.images):
        if src.is_dir():
            inputs += sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif src.is_file():
            inputs.append(src)
        else:
            problems.append(f"{src}: no such file or folder")
    if not inputs and not problems:
        problems.append(f"no images or videos in {', '.join(args.images)}")
    if not inputs:  # nothing to do: say so before making an output folder
        for line in problems:
            print(f"fcn-perception segment: error: {line}", file=sys.stderr)
        return 2
    seg = _segmenter(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    legend = out / "legend.png"
    cv2.imwrite(str(legend), legend_image(seg.classes, seg.palette_bgr))
    for path in inputs:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(path))
            ok, bgr = cap.read()
            if not ok:
                problems.append(f"{path}: not a video OpenCV can read")
                continue
            video = VideoOut(out / f"{path.stem}_overlay.mp4", cap.get(cv2.CAP_PROP_FPS) or 25.0)
            t0 = time.perf_counter()
            while ok:
                video.write(seg.overlay(bgr, seg.segment(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).mask))
                ok, bgr = cap.read()
            video.close()
            cap.release()
            print(f"{path.name}: {video.frames} frames -> {video.path} ({(time.perf_counter() - t0) / max(video.frames, 1) * 1e3:.1f} ms per frame)")
            continue
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            problems.append(f"{path}: not an image OpenCV can read")
            continue
        result = seg.segment(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        cv2.imwrite(str(out / f"{path.stem}_overlay.png"), seg.overlay(bgr, result.mask))
        cv2.imwrite(str(out / f"{path.stem}_mask.png"), result.mask)  # class ids (legend.png names them)
        cv2.imwrite(str(out / f"{path.stem}_mask_color.png"), cv2.LUT(cv2.merge([result.mask] * 3), seg.palette_bgr.reshape(256, 1, 3)))
        print(f"{path.name}: " + " ".join(f"{k} {v:.1f} ms" for k, v in result.timings_ms.items()))
    print(f"legend: {legend}")
    for line in problems:
        print(f"fcn-perception segment: error: {line}", file=sys.stderr)
    return 1 if problems else 0


def legend_image(classes: list[str], palette_bgr, row: int = 28):
    """Class id, colour swatch and name, one row per class."""
    import cv2
    import numpy as np

    img = np.full((row * len(classes) + 8, 260, 3), 255, np.uint8)
    for i, name in enumerate(classes):
        y = 4 + i * row
        cv2.rectangle(img, (8, y + 3), (48, y + row - 3), tuple(int(c) for c in palette_bgr[i]), -1)
        cv2.putText(img, f"{i:>2} {name}", (58, y + row - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def cmd_dense_eval(args: argparse.Namespace) -> int:
    """Val mIoU and time of the stride-32 path: bilinear vs shift-and-stitch (both routes) vs FCN-8s."""
    import numpy as np
    import torch

    from fcn_perception.inference.model_store import resolve_model
    from fcn_perception.model.fcn import load_model

    try:
        from fcn_perception.studies.shift_stitch import coarse_scores, dense_predict, dilated, upsample_to
    except ImportError:
        raise ValueError("dense-eval is a study, not part of the installed package: run it from a source checkout") from None
    from fcn_perception.training.datasets import LabelReader, open_split, read_pair
    from fcn_perception.training.metrics import confusion_matrix, scores
    from fcn_perception.training.patches import normalize

    torch.set_num_threads(args.threads or torch.get_num_threads())
    model = load_model(resolve_model(args.model))
    ds = open_split(args.data, args.split)
    labels = LabelReader(ds, model.cfg.classes)
    pairs = ds.pairs[: args.limit or None]
    n = model.cfg.num_classes
    dense_nets = {f: dilated(model, f) for f in (2, 4)}

    methods = {
        "stride-32 + bilinear (FCN-32s path)": lambda x: upsample_to(coarse_scores(model, x), x, 32),
        "shift-and-stitch f=2 (dilated, stride 16) + bilinear": lambda x: upsample_to(coarse_scores(dense_nets[2], x), x, 16),
        "shift-and-stitch f=4 (dilated, stride 8) + bilinear": lambda x: upsample_to(coarse_scores(dense_nets[4], x), x, 8),
        "shift-and-stitch f=2 (f^2 shifted passes) + bilinear": lambda x: dense_predict(model, x, 2, "shift_stitch"),
        f"{model.cfg.variant} learned upsampling + skips": model,
    }
    rows = []
    for name, fn in methods.items():
        conf = np.zeros((n, n), np.int64)
        times = []
        with torch.no_grad():
            for frame, label in pairs:
                rgb, lab = read_pair(frame, label, labels)
                x = normalize(rgb, model.cfg.mean, model.cfg.std)[None]
                t = time.perf_counter()
                logits = fn(x)
                times.append((time.perf_counter() - t) * 1e3)
                conf += confusion_matrix(logits.argmax(1)[0].numpy(), lab, n)
        res = scores(conf, model.cfg.classes)
        rows.append({"method": name, "miou": res["miou"], "road_iou": res["per_class_iou"]["Road"], "ms_p50": float(np.median(times))})
        print(f"{name:<58} mIoU {res['miou'] * 100:5.1f}  Road {res['per_class_iou']['Road'] * 100:5.1f}  {np.median(times):7.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": len(pairs), "rows": rows}, indent=2) + "\n")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from fcn_perception.bags.replay import replay

    overrides = {}
    if args.model:
        overrides["model"] = args.model
    if args.backend:
        overrides["backend"] = args.backend
    corpus = len(args.inputs) > 1 or args.workers > 1 or args.ray or args.force or _is_corpus_folder(args.inputs[0])
    if corpus:
        return _replay_corpus(args, overrides)
    summary = replay(
        args.inputs[0],
        args.out,
        args.topics or None,
        args.params or None,
        overrides,
        storage=args.storage,
        overlay=args.overlay,
        video_dir=args.video or None,
        summary_json=args.summary or None,
        confidence=args.confidence,
        uncertain=_uncertain(args),
        export_uncertain=args.export_uncertain or None,
    )
    print(summary.report())
    print(f"wrote {args.out}" + (f", {args.summary}" if args.summary else ""))
    return 0


def _uncertain(args: argparse.Namespace) -> tuple[int, float] | None:
    """(top, min_gap_s) when --export-uncertain is asked for; bad values are one line."""
    if not args.export_uncertain:
        return None
    _check_top_and_gap(args)
    return args.top, args.min_gap


def _check_top_and_gap(args: argparse.Namespace) -> None:
    """--top and --min-gap (see ``uncertain_args``), refused in one line when out of range."""
    if args.top < 1 or args.min_gap < 0:
        raise ValueError(f"--top must be at least 1 and --min-gap at least 0, got {args.top} and {args.min_gap}")


def _is_corpus_folder(path: str) -> bool:
    """A folder that is not itself a recording: searched for recordings."""
    from fcn_perception.bags.corpus import _is_recording_folder

    p = Path(path)
    return p.is_dir() and not _is_recording_folder(p)


def _replay_corpus(args: argparse.Namespace, overrides: dict) -> int:
    from fcn_perception.bags.corpus import Settings, replay_corpus
    from fcn_perception.ros.node_config import NodeConfig, load_params_yaml

    if args.video or args.summary:
        raise ValueError("--video and --summary take one recording; a corpus writes corpus.json under --out")
    values = load_params_yaml(args.params) if args.params else {}
    values.update(overrides)
    NodeConfig.from_dict(values)  # a bad parameter: one line before any worker starts
    settings = Settings(values, args.topics or None, args.storage, args.overlay, confidence=args.confidence, uncertain=_uncertain(args))
    res = replay_corpus(args.inputs, args.out, settings, args.workers, args.ray, args.force, export_uncertain=args.export_uncertain or None)
    t = res["totals"]
    for o in res["inputs"]:
        line = f"{o['status']:<8} {o['input']}"
        line += f": {o['masks']}/{o['frames']} masks, {o['bad_frames']} bad, {o['fps']} fps" if o["status"] != "failed" else f": {o['reason']}"
        print(line)
    print(
        f"{t['frames']} frames in {t['seconds']} s ({t['frames_per_s']} frames/s, {t['workers']} worker(s) x {t['threads_per_worker']} threads"
        + (f", Ray {t['ray']}" if t["ray"] else "")
        + f"); wrote {Path(args.out) / 'corpus.json'}"
    )
    if res["exported"]:
        print(f"wrote the least sure frames to label to {res['exported']}")
    if t["failed"]:
        print(f"{t['failed']} of {t['recordings']} recordings failed (reasons in corpus.json)")
        return 1
    print(f"all {t['recordings']} recordings replayed ({t['skipped']} already current)")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from fcn_perception.tools.compare import run

    _check_top_and_gap(args)  # --top also sizes the page, with or without --export-uncertain
    return run(
        args.inputs,
        args.baseline,
        args.candidate,
        args.report,
        args.min_agreement,
        args.min_frame_agreement,
        args.top,
        export_uncertain=args.export_uncertain or None,
        min_gap_s=args.min_gap,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fcn-perception", description="FCN road-scene segmentation: training, evaluation and tools")
    sub = p.add_subparsers(dest="command", required=True)

    def model_args(sp: argparse.ArgumentParser, backend: bool = True) -> None:
        sp.add_argument("--model", default="", help="checkpoint (.pt) or .onnx; default: the shipped model")
        if backend:
            sp.add_argument("--backend", default="auto", choices=BACKENDS)
            sp.add_argument(
                "--precision",
                default="auto",
                choices=PRECISIONS,
                help="auto: TensorRT fp16, PyTorch on CUDA fp16, on the CPU the shipped INT8 (OpenVINO or ONNX Runtime); bf16: OpenVINO on a CPU with bf16",
            )
            sp.add_argument("--size", type=size_arg, default=None, help="force the network's input WxH (default: model height, each frame's aspect)")
        sp.add_argument("--threads", type=int, default=0, help="CPU threads, 0 = all cores")

    def uncertain_args(sp: argparse.ArgumentParser, top: int, what: str) -> None:
        sp.add_argument(
            "--export-uncertain",
            default="",
            metavar="DIR",
            help="write the frames worth labelling as a dataset (class_dict.csv, frames/images, frames/labels with the model's pre-labels, frames.csv)",
        )
        sp.add_argument("--top", type=int, default=top, metavar="N", help=what)
        sp.add_argument("--min-gap", type=float, default=1.0, metavar="S", help="no two exported frames of one camera within S seconds of recording time")

    sp = sub.add_parser("train", help="train an FCN from a YAML config")
    sp.add_argument("--config", required=True)
    sp.add_argument("--out", default="", help="override the config's output folder")
    sp.add_argument("--restart", action="store_true", help="ignore last.pt instead of resuming from it")
    sp.add_argument("--init", default="", help="start from this checkpoint (fine-tuning; a different class list gets a new score head)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (dotted keys: augment.crop=[256,256])")
    sp.add_argument("--data", default="", metavar="DIR", help="train on this one dataset folder instead of the config's datasets (a labelling set as it is)")
    sp.add_argument("--split", default="train", help="with --data: the split to train on (an --export-uncertain set: frames)")
    sp.add_argument("--val-split", default="", help="with --data: the split to select on (default: val where it exists, else --split)")
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("eval", help="mIoU / per-class IoU / pixel accuracy on a labelled split (SegNet or generic layout)")
    sp.add_argument("--data", required=True, help="dataset folder: class_dict.csv + SPLIT/images + SPLIT/labels, or CamVid's SPLIT + SPLITannot")
    sp.add_argument("--split", default="val")
    sp.add_argument("--class-map", default="", help="YAML: dataset class name -> model class name or void")
    sp.add_argument("--json", default="")
    sp.add_argument("--confusion", default="", help="confusion-matrix PNG (default: beside --json)")
    sp.add_argument("--reliability", default="", help="reliability diagram of the confidence, PNG (default: beside --json)")
    sp.add_argument("--limit", type=int, default=0, help="only the first N frames")
    model_args(sp)
    sp.set_defaults(func=cmd_eval)

    sp = sub.add_parser("export", help="export a checkpoint to ONNX")
    sp.add_argument("--onnx", required=True)
    sp.add_argument("--height", type=int, default=0)
    sp.add_argument("--width", type=int, default=0)
    sp.add_argument("--dynamic", action="store_true", help="dynamic batch/height/width")
    sp.add_argument("--model", default="")
    sp.set_defaults(func=cmd_export)

    sp = sub.add_parser("quantize", help="INT8 (QDQ) ONNX for ONNX Runtime CPU, calibrated on real frames")
    sp.add_argument("--onnx", required=True, help="fp32 ONNX from `export`")
    sp.add_argument("--out", required=True)
    sp.add_argument("--calib-dir", required=True, help="folder of real frames (e.g. CamVid train/)")
    sp.add_argument("--frames", type=int, default=100)
    sp.add_argument("--symmetric", action="store_true", help="signed INT8 with zero points 0: the Q/DQ graph TensorRT builds INT8 engines from")
    sp.set_defaults(func=cmd_quantize)

    sp = sub.add_parser("build-engine", help="build a TensorRT engine from an ONNX export (GPU + TensorRT only)")
    sp.add_argument("--onnx", required=True)
    sp.add_argument("--precision", default="fp16", choices=["fp32", "fp16", "int8"])
    sp.add_argument(
        "--calib-dir", default="", help="folder of real frames: INT8 calibration on TensorRT 10 from an fp32 graph (not needed for a Q/DQ graph, nor on 11)"
    )
    sp.add_argument("--calib-frames", type=int, default=200)
    sp.add_argument("--width", type=int, default=0, help="frame size the engine serves (needed for an ONNX with a free height/width)")
    sp.add_argument("--height", type=int, default=0)
    sp.set_defaults(func=cmd_build_engine)

    sp = sub.add_parser("segment", help="segment images, videos or folders of them: overlays, id and colour masks, overlay videos, a legend")
    sp.add_argument("images", nargs="+", help="image files (png, jpg), video files (mp4, avi, mkv, ...) or folders")
    sp.add_argument("--out", default="segment_out")
    model_args(sp)
    sp.set_defaults(func=cmd_segment)

    sp = sub.add_parser("replay", help="run the pipeline over rosbag2 recordings (one, or a corpus) and write bags with the outputs")
    sp.add_argument("inputs", nargs="+", help="a recording (folder with metadata.yaml, .mcap, .db3), or several, or folders searched for them")
    sp.add_argument("--out", required=True, help="one recording: the output bag folder (must not exist); a corpus: the folder its outputs mirror into")
    sp.add_argument("--workers", type=int, default=1, help="corpus: worker processes on this machine (threads split between them)")
    sp.add_argument("--ray", default="", metavar="ADDRESS", help="corpus: run each bag as a Ray task (host:port, auto, or local); needs fcn_perception[ray]")
    sp.add_argument("--force", action="store_true", help="corpus: redo every input, also those whose output is final and current")
    sp.add_argument("--topics", nargs="*", default=[], help="camera topics (default: every Image/CompressedImage topic that is not an fcn_perception output)")
    sp.add_argument("--overlay", action="store_true", help="also store colour overlays (JPEG, <camera>/segmentation/overlay/compressed)")
    sp.add_argument("--summary", default="", metavar="S.json", help="per-camera figures as JSON")
    sp.add_argument("--video", default="", metavar="DIR", help="one overlay video per camera, at the recorded pace")
    sp.add_argument("--params", default="", help="the node's parameter YAML, so replay and live runs match")
    sp.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    sp.add_argument("--model", default="")
    sp.add_argument("--backend", default="", choices=("", *BACKENDS))
    sp.add_argument("--confidence", action="store_true", help="also write <camera>/segmentation/confidence (mono8, 255 = 1.0)")
    uncertain_args(sp, top=50, what="the N frames with the lowest drivable-region confidence")
    sp.set_defaults(func=cmd_replay)

    sp = sub.add_parser("compare", help="where a candidate model differs from the baseline on recorded drives (report.json + report.html)")
    sp.add_argument("inputs", nargs="+", help="recordings or folders of them")
    sp.add_argument("--baseline", required=True, help="the model in the car (.pt or .onnx)")
    sp.add_argument("--candidate", required=True, help="the new model (.pt or .onnx)")
    sp.add_argument("--report", required=True, metavar="DIR", help="report.json and report.html go here")
    sp.add_argument("--min-agreement", type=float, default=None, help="exit 1 when the mean drivable-area IoU is below this")
    sp.add_argument("--min-frame-agreement", type=float, default=None, help="exit 1 when any frame's drivable-area IoU is below this")
    uncertain_args(sp, top=8, what="the N frames that changed most (shown in the page; with --export-uncertain also written, spread by --min-gap)")
    sp.set_defaults(func=cmd_compare)

    from fcn_perception.tools import bench, demo, load

    sp = sub.add_parser("demo", help="node + sample drive over DDS, outputs recorded into --out")
    demo.add_arguments(sp)
    sp.set_defaults(func=demo.run_args)

    sp = sub.add_parser("bench", help="per-stage latency, FPS, memory and hardware floor on the sample drive")
    bench.add_arguments(sp)
    sp.set_defaults(func=bench.run_args)
    sp = sub.add_parser("load", help="the node process under N cameras at a fixed rate: soak, overload, multi-camera figures")
    load.add_arguments(sp)
    sp.set_defaults(func=load.run_args)

    sp = sub.add_parser("dense-eval", help="shift-and-stitch vs learned upsampling on a labelled split")
    sp.add_argument("--data", required=True)
    sp.add_argument("--split", default="val")
    sp.add_argument("--limit", type=int, default=0)
    sp.add_argument("--json", default="")
    model_args(sp, backend=False)
    sp.set_defaults(func=cmd_dense_eval)
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
