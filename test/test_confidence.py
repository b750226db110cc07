"""Confidence: computed in the exported graph on every CPU backend and in INT8, lower where the
model is wrong, published beside the mask, and used to pick the frames worth labelling next."""

from __future__ import annotations

import csv
import itertools
import json
import random

import cv2
import numpy as np
import pytest

from fcn_perception.bags.bag_io import read_messages
from fcn_perception.bags.label_export import Candidate, spread_lowest
from fcn_perception.bags.replay import replay
from fcn_perception.inference.backends import create_backend
from fcn_perception.inference.model_store import default_model_path
from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
from fcn_perception.tools.cli import main as cli
from fcn_perception.tools.demo import SAMPLE_CAMERA_POSE

POSE = {"camera_pose": list(SAMPLE_CAMERA_POSE)}


#: INT8 bound (mean, p99 |difference| in levels of 255): with VNNI (Intel Xeon here) 1.4 / 17-19
#: measured for the FCN-8s; without it (AMD EPYC here) the u8s8 products saturate in int16 and
#: 2.8-3.2 / 36-43 were measured for the FCN-8s, 3.8-3.9 / 53-62 for the FCN-4s on OpenVINO (its stride-4
#: skip reads the least quantisation-friendly, earliest features)
INT8_LIMITS = {True: (3.0, 30), False: (4.5, 70)}
#: what the stencil head of both CPU backends adds (``inference/stencil_head.py``): its confidence is
#: 1 / 18 levels from the graph's (mean / p99, CamVid val); OpenVINO fp32 then measured 1.2 / 18 here,
#: INT8 2.1 / 24, ONNX Runtime fp32 0.9 / 18, INT8 2.1 / 24 (AMD EPYC)
STENCIL_HEAD_LIMITS = (1.5, 20)
FRONT = "/camera_front/image_raw/compressed"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("kind", ["onnx", "int8"])
def test_every_cpu_backend_and_int8_give_the_same_confidence_as_the_checkpoint(camvid, backend, kind, int8_vnni):
    """The graph's confidence (fp32 and INT8 graphs: the class-score head stays float) against the
    checkpoint's softmax on PyTorch. Measured mean / p99 |difference| in levels of 255, the whole graph:
    ONNX Runtime fp32 0 / 0, OpenVINO fp32 (bf16 on AMX) 0.5 / 6, INT8: the trunk's quantisation, by
    CPU (INT8_LIMITS); the stencil head adds its own (STENCIL_HEAD_LIMITS)."""
    from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend

    ref = create_backend("torch", default_model_path("pt"), device="cpu")
    other = create_backend(backend, default_model_path(kind), (480, 360), threads=2)
    exact = OnnxRuntimeBackend(default_model_path("onnx"), 2, stencil_head=False) if (backend, kind) == ("onnxruntime", "onnx") else None
    seg = Segmenter(SegmenterConfig(backend="onnxruntime", precision="fp32"))
    for f in sorted((camvid / "val").iterdir())[:2]:
        x = seg.preprocess(cv2.imread(str(f))[..., ::-1])
        a, b = ref.infer(x), other.infer(x)
        assert b.confidence.dtype == np.uint8 and b.confidence.shape == b.mask.shape
        diff = np.abs(a.confidence.astype(int) - b.confidence.astype(int))
        mean_limit, p99_limit = (0.1, 1) if (backend, kind) == ("onnxruntime", "onnx") else (1.0, 10) if kind == "onnx" else INT8_LIMITS[int8_vnni]
        if exact is not None:  # the exported graph whole is the checkpoint's confidence
            whole = np.abs(a.confidence.astype(int) - exact.infer(x).confidence.astype(int))
            assert whole.mean() <= mean_limit and np.percentile(whole, 99) <= p99_limit, (whole.mean(), np.percentile(whole, 99))
        # the stencil head: bilinear between score cells that agree on the class
        mean_limit, p99_limit = mean_limit + STENCIL_HEAD_LIMITS[0], p99_limit + STENCIL_HEAD_LIMITS[1]
        assert diff.mean() <= mean_limit and np.percentile(diff, 99) <= p99_limit, (backend, kind, diff.mean(), np.percentile(diff, 99))
        assert b.confidence.min() >= 255 // len(seg.classes)  # a top-class probability is at least 1 / classes


def test_wrong_pixels_are_clearly_less_sure_and_eval_reports_calibration(camvid, tmp_path, capsys):
    """On labelled CamVid frames the mean confidence of wrongly classified pixels is at least 0.15
    below that of correct ones; eval reports it and draws the reliability diagram."""
    out = tmp_path / "eval.json"
    args = ["eval", "--data", str(camvid), "--split", "val", "--limit", "6", "--json", str(out)]
    assert cli([*args, "--class-map", "config/class_maps/camvid_to_lanes.yaml"]) == 0
    conf = json.loads(out.read_text())["confidence"]
    assert conf["mean_correct"] - conf["mean_wrong"] >= 0.15, conf
    assert conf["gap"] == pytest.approx(conf["mean_correct"] - conf["mean_wrong"])
    filled = [b for b in conf["bins"] if b["pixels"]]
    assert filled[-1]["accuracy"] > filled[0]["accuracy"]  # surer bins are right more often
    assert 0.0 <= conf["ece"] < 0.2
    assert out.with_suffix(".reliability.png").stat().st_size > 5000
    assert "confidence: right pixels" in capsys.readouterr().out


def test_replay_writes_the_confidence_image_and_reports_the_drivable_confidence(sample_bag, tmp_path):
    plain = replay(sample_bag, tmp_path / "plain", overrides=POSE, progress=False)
    assert "/camera_front/segmentation/confidence" not in plain.output_counts  # only when asked
    summary = replay(sample_bag, tmp_path / "out", overrides=POSE, progress=False, confidence=True, summary_json=tmp_path / "s.json")
    assert summary.output_counts["/camera_front/segmentation/confidence"] == 40
    sure = json.loads((tmp_path / "s.json").read_text())["cameras"][FRONT]["drivable_confidence"]
    assert sure == summary.cameras[FRONT].drivable_confidence and 0.5 < sure <= 1.0
    images = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec): m.msg for m in read_messages(tmp_path / "out", [FRONT])}
    confs = list(read_messages(tmp_path / "out", ["/camera_front/segmentation/confidence"]))
    masks = {(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec): m.msg for m in read_messages(tmp_path / "out", ["/camera_front/segmentation/mask"])}
    for m in confs:
        stamp = (m.msg.header.stamp.sec, m.msg.header.stamp.nanosec)
        assert stamp in images and m.msg.header.frame_id == images[stamp].header.frame_id
        assert (m.msg.width, m.msg.height, m.msg.encoding, m.msg.step) == (480, 360, "mono8", 480)
    # the summary's figure is the per-frame mean over the drivable (Road, LaneMarking) pixels
    per_frame = []
    for m in confs:
        c = np.frombuffer(m.msg.data, np.uint8).reshape(360, 480)
        mask = np.frombuffer(masks[(m.msg.header.stamp.sec, m.msg.header.stamp.nanosec)].data, np.uint8).reshape(360, 480)
        per_frame.append(c[np.isin(mask, [3, 11])].mean() / 255)
    assert np.mean(per_frame) == pytest.approx(sure, abs=1e-3)


def test_spread_lowest_keeps_the_gap_per_camera_and_picking_per_camera_first_changes_nothing():
    rng = random.Random(0)
    cands = [
        Candidate(bag, topic, int(t * 1e8), int(t * 1e8), rng.random())
        for bag in ("a", "b")
        for topic in ("/front", "/rear")
        for t in range(100)  # 10 Hz for 10 s
    ]
    picks = spread_lowest(cands, 12, 1.0)
    assert len(picks) == 12 and [c.score for c in picks] == sorted(c.score for c in picks)
    for i, p in enumerate(picks):
        for q in picks[i + 1 :]:
            assert (p.bag, p.topic) != (q.bag, q.topic) or abs(p.stamp_ns - q.stamp_ns) >= 1e9
    # a lower frame is left out only for a picked neighbour of its own camera
    skipped = [c for c in cands if c not in picks and c.score < picks[-1].score]
    assert skipped and all(any((c.bag, c.topic) == (p.bag, p.topic) and abs(c.stamp_ns - p.stamp_ns) < 1e9 for p in picks) for c in skipped)
    per_camera = [c for key in {(c.bag, c.topic) for c in cands} for c in spread_lowest([c for c in cands if (c.bag, c.topic) == key], 12, 1.0)]
    assert spread_lowest(per_camera, 12, 1.0) == picks


def test_export_uncertain_writes_the_least_sure_frames_as_a_dataset_eval_reads(sample_bag, tmp_path, capsys):
    every = replay(sample_bag, tmp_path / "all", overrides=POSE, progress=False, uncertain=(1000, 0.0))
    assert len(every.uncertain) == 40  # every frame's drivable confidence, with a gap of 0
    want = spread_lowest([Candidate(**c) for c in every.uncertain], 3, 0.5)
    out = tmp_path / "label_me"
    args = ["replay", str(sample_bag), "--out", str(tmp_path / "bag"), "--export-uncertain", str(out), "--top", "3", "--min-gap", "0.5"]
    assert cli(args) == 0
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["bag", "topic", "stamp_ns", "confidence"]
    assert [(r["topic"], int(r["stamp_ns"])) for r in rows] == [(c.topic, c.stamp_ns) for c in want]
    assert [float(r["confidence"]) for r in rows] == pytest.approx([c.confidence for c in want], abs=1e-4)
    stamps = sorted(int(r["stamp_ns"]) for r in rows)
    assert all(b - a >= 0.5e9 for a, b in itertools.pairwise(stamps))
    assert len(list((out / "frames" / "images").iterdir())) == len(list((out / "frames" / "labels").iterdir())) == 3
    # the pre-labels are the model's own masks: eval of the same model on them is perfect
    capsys.readouterr()
    assert cli(["eval", "--data", str(out), "--split", "frames", "--json", str(tmp_path / "e.json")]) == 0
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["frames"] == 3 and res["pixel_accuracy"] == 1.0 and res["unknown_colour_pixels"] == 0
    # after correction, fine-tuning takes the set as it is
    run = tmp_path / "run"
    train = ["train", "--config", "config/finetune_example.yaml", "--init", str(default_model_path("pt")), "--data", str(out), "--split", "frames"]
    assert cli([*train, "--set", f"out={run}", "--set", "iterations=1", "--set", "eval_every=1", "--set", "batch_size=2"]) == 0
    assert (run / "best.pt").is_file()
    # a folder that holds something already is refused before any replay, in one line
    code = cli(["replay", str(sample_bag), "--out", str(tmp_path / "bag2"), "--export-uncertain", str(out)])
    assert code == 2 and not (tmp_path / "bag2").exists()
    assert "exists and is not an empty folder" in capsys.readouterr().err
