"""Frames worth labelling next: pick the frames a model is least sure of (or where two models
disagree most), spread over each drive, and write them as a dataset a labelling tool and
``train --init`` take as they are.

The pick is greedy: lowest score first, skipping a frame within ``min_gap_s`` of recording time of
one already picked from the same camera of the same recording (30 near-identical frames of one
hard turn teach less than 30 hard moments). Because the gap only binds frames of one camera,
picking per camera first (:func:`spread_lowest` on each camera's frames, then on the union) gives
the same frames as picking over the whole corpus at once: replay and each corpus worker keep only
their cameras' ``top`` candidates, never every frame's score.

The dataset is the generic layout (``class_dict.csv`` + ``frames/images`` + ``frames/labels``) with
the model's own prediction as colour pre-labels, and ``frames.csv`` saying where each frame came
from. Frames are read back from their recordings by topic and log time and segmented again by the
same pipeline (deterministic: the same mask the replay produced), so no image is held in memory
while a drive is replayed.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from fcn_perception.bags.camera_feed import CameraFeed
from fcn_perception.bags.recording import open_recording
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.scene.frame_loop import KeepLast, serve_frame
from fcn_perception.scene.image_codec import decode
from fcn_perception.scene.pipeline import Pipeline

SPLIT = "frames"
FRAMES_CSV = "frames.csv"


@dataclass(frozen=True)
class Candidate:
    bag: str
    topic: str
    stamp_ns: int  # the image header's stamp: recording time, what the gap is measured in
    log_time_ns: int  # the message's time in the recording: how it is found again
    score: float  # lower = more worth labelling (the drivable-region confidence, or the agreement)
    confidence: float | None = None  # mean confidence over the drivable region (frames.csv)
    drivable_iou: float | None = None  # compare: the agreement of the two models

    def to_json(self) -> dict:
        return asdict(self)


def spread_lowest(candidates: Iterable[Candidate], top: int, min_gap_s: float) -> list[Candidate]:
    """The ``top`` lowest-scoring candidates, no two of one camera (recording, topic) closer than
    ``min_gap_s`` in recording time; ties broken by recording, topic and stamp (reproducible)."""
    gap_ns = round(min_gap_s * 1e9)
    picked: list[Candidate] = []
    taken: dict[tuple[str, str], list[int]] = defaultdict(list)
    for c in sorted(candidates, key=lambda c: (c.score, c.bag, c.topic, c.stamp_ns)):
        if len(picked) >= top:
            break
        near = taken[(c.bag, c.topic)]
        if any(abs(c.stamp_ns - s) < gap_ns for s in near):
            continue
        near.append(c.stamp_ns)
        picked.append(c)
    return picked


def check_out_dir(out_dir: str | Path) -> Path:
    """The export folder must be new or empty: a labelling set is never mixed with an older one.
    Asked before a replay starts, so a mistake costs no replay."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--export-uncertain {out}: exists and is not an empty folder")
    return out


def _name(rank: int, c: Candidate) -> str:
    """File stem: the rank first (a labeller works down the list; two recordings of one name in
    different folders cannot collide), then where the frame came from."""
    cam = re.sub(r"[^A-Za-z0-9]+", "_", c.topic).strip("_") or "camera"
    return f"{rank:04d}_{Path(c.bag).stem}_{cam}_{c.stamp_ns}"


def write_label_set(out_dir: str | Path, picks: list[Candidate], pipeline: Pipeline, cfg: NodeConfig | None = None) -> Path:
    """``picks`` as a generic-layout dataset with ``pipeline``'s masks as colour pre-labels, plus
    frames.csv (bag, topic, stamp_ns, confidence, ...), in score order. Returns the folder. Frames
    are read again and served by the frame loop with the car's parameters ``cfg``."""
    out = check_out_dir(out_dir)
    images, labels = out / SPLIT / "images", out / SPLIT / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    classes, lut = pipeline.segmenter.classes, pipeline.segmenter.palette_bgr
    with open(out / "class_dict.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "r", "g", "b"])
        for i, name in enumerate(classes):
            b, g, r = (int(v) for v in lut[i])
            w.writerow([name, r, g, b])
    wanted: dict[str, dict[tuple[str, int], Candidate]] = defaultdict(dict)
    rank = {c: i for i, c in enumerate(picks)}
    for c in picks:
        wanted[c.bag][(c.topic, c.log_time_ns)] = c
    written: dict[Candidate, str] = {}
    cfg = cfg or NodeConfig.from_dict({})
    for bag, by_key in wanted.items():
        rec = open_recording(bag)
        feed = CameraFeed(rec, cfg, sorted({t for t, _ in by_key}))
        cams, keep = feed.workflows(), KeepLast()
        for m in rec.messages(set(feed.topics)):
            c = by_key.get((m.topic, m.timestamp))
            if c is None or c in written or (msg := feed.receive(m, cams)) is None:
                continue
            if (result := serve_frame(cams[m.topic], pipeline, msg, feed.pose, keep).result) is None:
                continue  # served when it was picked; now not (reported below as not found)
            name = _name(rank[c], c)
            rgb = result.rgb if result.rgb.shape[:2] == result.mask.shape else decode(msg)  # labellers get every pixel
            cv2.imwrite(str(images / f"{name}.png"), np.ascontiguousarray(rgb[..., ::-1]))
            # written as BGR: the file holds the class_dict.csv colours
            cv2.imwrite(str(labels / f"{name}.png"), cv2.LUT(cv2.merge([result.mask] * 3), lut.reshape(256, 1, 3)))
            written[c] = name
    missing = [c for c in picks if c not in written]
    if missing:
        raise ValueError(f"{len(missing)} picked frames were not found again in their recordings (first: {missing[0].bag} {missing[0].topic})")
    with open(out / FRAMES_CSV, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["bag", "topic", "stamp_ns", "confidence", "drivable_iou", "image"])
        for c in picks:
            conf = "" if c.confidence is None else f"{c.confidence:.4f}"
            agree = "" if c.drivable_iou is None else f"{c.drivable_iou:.4f}"
            w.writerow([c.bag, c.topic, c.stamp_ns, conf, agree, f"{SPLIT}/images/{written[c]}.png"])
    return out
