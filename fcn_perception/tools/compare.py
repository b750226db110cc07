"""``fcn-perception compare``: where a candidate model differs from the baseline on recorded drives.

Both models run over every camera frame of the recordings (no labels needed); per frame the report
gives the IoU of the two drivable masks and of the two ego polygons, each class's pixel share under
A and B, and the A→B class confusion. ``report.json`` and a self-contained ``report.html`` (images
embedded) are written; the exit code is 1 when the mean drivable agreement falls below
``--min-agreement`` (or any frame below ``--min-frame-agreement``), so a CI job can gate a model.
With ``--export-uncertain`` the frames that changed most (spread by ``--min-gap``) are written as a
labelling set with the candidate's masks as pre-labels (label_export.py).

Frames go through the node's frame loop with the car's parameters (``--params``): the same cameras,
drivable classes, polygon settings and CameraInfo/TF as in the car, and a frame either model cannot
serve is counted by its camera (``bad_frames`` in the report), as the node counts it.
"""

from __future__ import annotations

import base64
import heapq
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fcn_perception.bags.camera_feed import CameraFeed
from fcn_perception.bags.corpus import find_inputs
from fcn_perception.bags.label_export import Candidate, check_out_dir, spread_lowest, write_label_set
from fcn_perception.bags.recording import open_recording
from fcn_perception.bags.tf_graph import TF_TOPICS
from fcn_perception.params.node_config import NodeConfig
from fcn_perception.ros.topics import stamp_ns
from fcn_perception.scene.frame_loop import KeepLast, serve_frame
from fcn_perception.scene.pipeline import FrameResult, Pipeline


def pipeline_for(cfg: NodeConfig, model: str) -> Pipeline:
    """A model with the car's parameters (drivable classes, polygons, backend, threads, ...)."""
    from dataclasses import replace

    return Pipeline.for_config(cfg, replace(cfg.segmenter(), model=model))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty (they agree that there is nothing)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def ego_mask(result: FrameResult) -> np.ndarray:
    """The ego polygon (outline less holes) rasterised at the frame's size."""
    out = np.zeros(result.mask.shape, np.uint8)
    if result.ego is not None:
        cv2.fillPoly(out, [np.round(result.ego.outer).astype(np.int32)], 1)
        holes = [np.round(h).astype(np.int32) for h in result.ego.holes]
        if holes:
            cv2.fillPoly(out, holes, 0)
    return out.astype(bool)


@dataclass
class Comparison:
    classes_a: list[str]
    classes_b: list[str]
    frames: list[dict] = field(default_factory=list)
    confusion: np.ndarray | None = None  # (classes of A, classes of B) pixel counts
    worst: list = field(default_factory=list)  # heap of (-(1 - iou), index, jpeg) for the report
    skipped: dict[str, str] = field(default_factory=dict)  # input -> why it was not compared
    candidates: list[Candidate] = field(default_factory=list)  # every frame, scored by agreement (--export-uncertain)
    bad_frames: dict[str, int] = field(default_factory=lambda: {"baseline": 0, "candidate": 0})  # frames a model could not serve


def _composite(rgb: np.ndarray, a: FrameResult, b: FrameResult, pa: Pipeline, pb: Pipeline) -> bytes:
    """A | B | where they differ, as one JPEG."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    left, right = pa.overlay_bgr(a, 0.5), pb.overlay_bgr(b, 0.5)
    diff = bgr.copy()
    changed = pa.drivable_pixels(a.mask) != pb.drivable_pixels(b.mask)
    diff[changed] = (0, 0, 255)
    diff[(a.mask != b.mask) & ~changed] //= 2
    return cv2.imencode(".jpg", np.hstack([left, right, diff]), [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 5)


def _frame_record(cmp: Comparison, bag: str, topic: str, header, a: FrameResult, b: FrameResult, pa: Pipeline, pb: Pipeline) -> dict:
    na, nb = len(cmp.classes_a), len(cmp.classes_b)
    da, db = pa.drivable_pixels(a.mask) > 0, pb.drivable_pixels(b.mask) > 0
    pixels = a.mask.size
    return {
        "bag": bag,
        "topic": topic,
        "stamp_ns": stamp_ns(header),
        "drivable_iou": round(iou(da, db), 5),
        "ego_iou": round(iou(ego_mask(a), ego_mask(b)), 5),
        # how sure each model is on its own drivable region (None: no confidence output / no region)
        "confidence_a": _round(a.drivable_confidence),
        "confidence_b": _round(b.drivable_confidence),
        "share_a": {c: round(float(v) / pixels, 5) for c, v in zip(cmp.classes_a, np.bincount(a.mask.ravel(), minlength=na)[:na], strict=True)},
        "share_b": {c: round(float(v) / pixels, 5) for c, v in zip(cmp.classes_b, np.bincount(b.mask.ravel(), minlength=nb)[:nb], strict=True)},
    }


def _add(cmp: Comparison, frame: dict, log_time: int, a: FrameResult, b: FrameResult, pa: Pipeline, pb: Pipeline, top: int) -> None:
    na, nb = len(cmp.classes_a), len(cmp.classes_b)
    cmp.confusion += np.bincount(a.mask.ravel().astype(np.int64) * nb + b.mask.ravel(), minlength=na * nb)[: na * nb].reshape(na, nb)
    index = len(cmp.frames)
    cmp.frames.append(frame)
    cmp.candidates.append(
        Candidate(frame["bag"], frame["topic"], frame["stamp_ns"], log_time, frame["drivable_iou"], frame["confidence_b"], frame["drivable_iou"])
    )
    key = (1.0 - frame["drivable_iou"], -index)
    if len(cmp.worst) < top or key > cmp.worst[0][:2]:
        item = (*key, _composite(a.camera_rgb(), a, b, pa, pb))
        (heapq.heappush if len(cmp.worst) < top else heapq.heapreplace)(cmp.worst, item)


def _compare_recording(cmp: Comparison, path: Path, cfg: NodeConfig, pa: Pipeline, pb: Pipeline, top: int) -> None:
    """Both models over one recording's camera frames, each through its own camera workflows."""
    rec = open_recording(path)
    feed = CameraFeed(rec, cfg)
    cams_a, cams_b = feed.workflows(), feed.workflows()
    feed.prime(cams_a, cams_b)
    keep_a, keep_b = KeepLast(), KeepLast()
    for m in rec.messages(set(feed.topics) | set(feed.info_topics) | set(TF_TOPICS)):
        if feed.follow(m, cams_a, cams_b) or (msg := feed.receive(m, cams_a, cams_b)) is None:
            continue
        a = serve_frame(cams_a[m.topic], pa, msg, feed.pose, keep_a, odom=feed.odom).result
        b = serve_frame(cams_b[m.topic], pb, msg, feed.pose, keep_b, odom=feed.odom).result
        if a is not None and b is not None:  # a frame either model cannot serve is counted, not compared
            _add(cmp, _frame_record(cmp, str(path), m.topic, msg.header, a, b, pa, pb), m.timestamp, a, b, pa, pb, top)
    cmp.bad_frames["baseline"] += sum(c.counters.bad for c in cams_a.values())
    cmp.bad_frames["candidate"] += sum(c.counters.bad for c in cams_b.values())


def compare(
    paths: list[str | Path], baseline: str, candidate: str, top: int = 8, progress: bool = True, pipelines=None, cfg: NodeConfig | None = None
) -> Comparison:
    """``pipelines``: (A, B) already loaded (else made from the two model paths); ``cfg``: the car's
    parameters (default: the node's defaults)."""
    from tqdm import tqdm

    cfg = cfg or NodeConfig.from_dict({})
    pa, pb = pipelines or (pipeline_for(cfg, baseline), pipeline_for(cfg, candidate))
    cmp = Comparison(list(pa.segmenter.classes), list(pb.segmenter.classes))
    cmp.confusion = np.zeros((len(cmp.classes_a), len(cmp.classes_b)), np.int64)
    inputs, _ = find_inputs(paths)
    for inp in tqdm(inputs, desc="compare", unit="bag", disable=not progress):
        try:
            _compare_recording(cmp, inp.path, cfg, pa, pb, top)
        except Exception as exc:  # not a recording, nothing readable, no camera: said in the report
            cmp.skipped[str(inp.path)] = f"{exc.__class__.__name__}: {exc}"
    return cmp


def report_json(cmp: Comparison, baseline: str, candidate: str) -> dict:
    def mean_of(key: str) -> float | None:
        values = [f[key] for f in cmp.frames if f[key] is not None]
        return round(float(np.mean(values)), 5) if values else None

    return {
        "baseline": baseline,
        "candidate": candidate,
        "mean_drivable_iou": mean_of("drivable_iou"),
        "mean_ego_iou": mean_of("ego_iou"),
        "mean_confidence_a": mean_of("confidence_a"),
        "mean_confidence_b": mean_of("confidence_b"),
        "frames": cmp.frames,
        "classes_a": cmp.classes_a,
        "classes_b": cmp.classes_b,
        "confusion": cmp.confusion.tolist(),
        "skipped": cmp.skipped,
        "bad_frames": cmp.bad_frames,
    }


def _png(fig) -> str:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def report_html(cmp: Comparison, data: dict) -> str:
    """One page, every image embedded: agreement over time per bag and camera, the frames that
    changed most (A | B | difference), the A→B confusion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>fcn-perception compare</title>",
        "<style>body{font-family:sans-serif;margin:1em}img{max-width:100%}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>{html.escape(Path(data['candidate']).name or 'candidate')} against {html.escape(Path(data['baseline']).name or 'baseline')}</h1>",
        f"<p>{len(cmp.frames)} frames; mean drivable-area IoU <b>{data['mean_drivable_iou']}</b>, mean ego-polygon IoU {data['mean_ego_iou']}; "
        f"mean confidence on the drivable region: baseline {data['mean_confidence_a']}, candidate {data['mean_confidence_b']}</p>",
    ]
    series: dict[tuple[str, str], list[dict]] = {}
    for f in cmp.frames:
        series.setdefault((f["bag"], f["topic"]), []).append(f)
    for (bag, topic), pts in series.items():
        t0 = pts[0]["stamp_ns"]
        t = [(f["stamp_ns"] - t0) / 1e9 for f in pts]
        fig, ax = plt.subplots(figsize=(8, 2.4))
        ax.plot(t, [f["drivable_iou"] for f in pts], marker=".", label="drivable IoU (agreement)")
        for key, name, style in (("confidence_a", "baseline", ":"), ("confidence_b", "candidate", "--")):
            if any(f[key] is not None for f in pts):  # how sure each model is on its drivable region
                ax.plot(t, [np.nan if f[key] is None else f[key] for f in pts], style, label=f"{name} confidence")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("s")
        ax.set_ylabel("IoU / confidence")
        ax.legend(loc="lower left", fontsize=7, ncol=3)
        ax.set_title(f"{Path(bag).name} {topic}", fontsize=9)
        fig.tight_layout()
        parts.append(
            f"<h2>{html.escape(Path(bag).name)} {html.escape(topic)}</h2><img class='plot' alt='agreement over time' src='data:image/png;base64,{_png(fig)}'>"
        )
        plt.close(fig)
    parts.append("<h2>Frames that changed most (baseline | candidate | difference: red = drivable differs)</h2>")
    for _, minus_index, jpeg in sorted(cmp.worst, reverse=True):
        f = cmp.frames[-minus_index]
        caption = f"{html.escape(Path(f['bag']).name)} {html.escape(f['topic'])} {f['stamp_ns']}: drivable IoU {f['drivable_iou']}, ego IoU {f['ego_iou']}"
        src = f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}"
        parts.append(f"<figure><img class='frame' alt='changed frame' src='{src}'><figcaption>{caption}</figcaption></figure>")
    parts.append("<h2>Class confusion (rows: baseline, columns: candidate; share of the baseline's pixels)</h2><table><tr><th></th>")
    parts += [f"<th>{html.escape(c)}</th>" for c in cmp.classes_b]
    parts.append("</tr>")
    rows = cmp.confusion / np.maximum(cmp.confusion.sum(1, keepdims=True), 1)
    for name, row in zip(cmp.classes_a, rows, strict=True):
        parts.append(f"<tr><th>{html.escape(name)}</th>" + "".join(f"<td>{v:.3f}</td>" for v in row) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def run(
    paths,
    baseline: str,
    candidate: str,
    report: str | Path,
    min_agreement: float | None,
    min_frame_agreement: float | None,
    top: int = 8,
    export_uncertain: str | Path | None = None,
    min_gap_s: float = 1.0,
    cfg: NodeConfig | None = None,
) -> int:
    if export_uncertain:
        check_out_dir(export_uncertain)
    cfg = cfg or NodeConfig.from_dict({})
    pipelines = pipeline_for(cfg, baseline), pipeline_for(cfg, candidate)
    cmp = compare(paths, baseline, candidate, top, pipelines=pipelines, cfg=cfg)
    if not cmp.frames:
        raise ValueError(f"no camera frame found to compare in {', '.join(map(str, paths))}")
    if export_uncertain:  # the frames the models disagree on most, pre-labelled by the candidate
        picks = spread_lowest(cmp.candidates, top, min_gap_s)
        print(f"wrote the {len(picks)} frames that changed most to {write_label_set(export_uncertain, picks, pipelines[1], cfg)}")
    data = report_json(cmp, baseline, candidate)
    out = Path(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "report.html").write_text(report_html(cmp, data))
    worst = min(f["drivable_iou"] for f in cmp.frames)
    print(f"{len(cmp.frames)} frames: mean drivable agreement {data['mean_drivable_iou']}, worst frame {worst}; wrote {out / 'report.html'}")
    if min_agreement is not None and data["mean_drivable_iou"] < min_agreement:
        print(f"FAIL: mean drivable agreement {data['mean_drivable_iou']} < --min-agreement {min_agreement}")
        return 1
    if min_frame_agreement is not None and worst < min_frame_agreement:
        print(f"FAIL: a frame's drivable agreement {worst} < --min-frame-agreement {min_frame_agreement}")
        return 1
    print("ok: the candidate agrees with the baseline within the limits")
    return 0
