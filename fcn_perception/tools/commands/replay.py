"""``fcn-perception replay``: one recording, or a corpus of them, through the node's frame loop into output bags."""

from __future__ import annotations

import argparse
from pathlib import Path

from fcn_perception.inference.backends import BACKENDS
from fcn_perception.tools.args import count_arg
from fcn_perception.tools.commands.common import uncertain, uncertain_args


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("inputs", nargs="+", help="a recording (folder with metadata.yaml, .mcap, .db3), or several, or folders searched for them")
    sp.add_argument("--out", required=True, help="one recording: the output bag folder (must not exist); a corpus: the folder its outputs mirror into")
    sp.add_argument("--workers", type=count_arg(), default=1, help="corpus: worker processes on this machine (threads split between them)")
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


def run(args: argparse.Namespace) -> int:
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
        uncertain=uncertain(args),
        export_uncertain=args.export_uncertain or None,
    )
    print(summary.report())
    print(f"wrote {args.out}" + (f", {args.summary}" if args.summary else ""))
    return 0


def _is_corpus_folder(path: str) -> bool:
    """A folder that is not itself a recording: searched for recordings."""
    from fcn_perception.bags.recording import is_recording_folder

    p = Path(path)
    return p.is_dir() and not is_recording_folder(p)


def _replay_corpus(args: argparse.Namespace, overrides: dict) -> int:
    from fcn_perception.bags.corpus import Settings, replay_corpus
    from fcn_perception.params.node_config import NodeConfig, load_params_yaml

    if args.video or args.summary:
        raise ValueError("--video and --summary take one recording; a corpus writes corpus.json under --out")
    values = load_params_yaml(args.params) if args.params else {}
    values.update(overrides)
    NodeConfig.from_dict(values)  # a bad parameter: one line before any worker starts
    settings = Settings(values, args.topics or None, args.storage, args.overlay, confidence=args.confidence, uncertain=uncertain(args))
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
