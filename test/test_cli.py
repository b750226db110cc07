"""The command-line tools as a user runs them: segment on photos and videos, one-line mistakes."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "fcn_perception", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def _one_line_error(res):
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return res.returncode != 0 and len(lines) == 1 and "Traceback" not in res.stderr


def test_segment_writes_overlays_colour_masks_a_legend_and_overlay_videos(camvid, tmp_path):
    frames = sorted((camvid / "val").iterdir())[:3]
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (480, 360))
    for f in frames:
        writer.write(cv2.imread(str(f)))
    writer.release()
    out = tmp_path / "out"
    res = _cli("segment", frames[0], video, "--out", out)
    assert res.returncode == 0, res.stderr
    stem = frames[0].stem
    ids = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
    colour = cv2.imread(str(out / f"{stem}_mask_color.png"))
    assert ids.shape == (360, 480) and colour.shape == (360, 480, 3)
    road = ids == 3
    assert road.mean() > 0.2 and (colour[road] == (128, 64, 128)).all()  # Road in CamVid's purple (BGR = RGB here)
    legend = cv2.imread(str(out / "legend.png"))
    assert legend is not None and legend.shape[0] >= 11 * 20
    cap = cv2.VideoCapture(str(next(out.glob("clip_overlay.*"))))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)


def test_segment_reports_missing_and_unreadable_inputs(camvid, tmp_path):
    res = _cli("segment", tmp_path / "nope.jpg", "--out", tmp_path / "o1")
    assert _one_line_error(res) and "nope.jpg" in res.stderr
    assert not (tmp_path / "o1").exists()  # nothing made for nothing
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    good = sorted((camvid / "val").iterdir())[0]
    res = _cli("segment", good, bad, "--out", tmp_path / "o2")
    assert res.returncode != 0 and "bad.png: not an image" in res.stderr
    assert (tmp_path / "o2" / f"{good.stem}_overlay.png").is_file()  # the good one is still done


@pytest.mark.parametrize("size", ["480,360", "0x0", "x360", "480x-1"])
def test_bad_size_is_one_line(size, tmp_path):
    res = _cli("bench", "--size", size, "--frames", "1")
    assert res.returncode == 2 and "WxH with both > 0" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize(
    "argv, words",
    [
        (["load", "--cameras", "0"], "--cameras: must be at least 1, got 0"),  # was: min() arg is an empty sequence
        (["load", "--rate", "0"], "--rate: must be over 0, got 0"),  # was: ZeroDivisionError
        (["load", "--rate", "nan"], "--rate: must be over 0"),
        (["load", "--frames", "-3"], "--frames: must be at least 1"),
        (["bench", "--frames", "0"], "--frames: must be at least 1"),  # was: TypeError from the statistics
        (["bench", "--smoothing", "2"], "temporal_smoothing: 2.0 outside [0.0, 0.95]"),
        (["segment", "x.jpg", "--out", "o", "--threads", "-2"], "threads: -2 outside [0, 256]"),  # was: OpenVINO's compiler
        (["replay", "x.mcap", "--out", "o", "--workers", "0"], "--workers: must be at least 1"),
        (["eval", "--data", "d", "--limit", "-1"], "--limit: must be at least 0"),  # was: every frame but the last
        (["compare", "x", "--report", "r", "--min-agreement", "1.5"], "at most 1, got 1.5"),
        (["demo", "--rate", "0"], "--rate: must be over 0"),  # was: a failed demo after its whole timeout
        (["load", "--cameras", "two"], "--cameras: expected a whole number, got 'two'"),
        (["load", "--size", "1280x720,0x720"], "WxH with both > 0, e.g. 480x360, got '0x720'"),  # one per camera, each checked
    ],
)
def test_a_count_or_rate_out_of_range_is_one_line_before_anything_runs(argv, words, capsys):
    from fcn_perception.tools.cli import main

    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and words in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_load_startup_with_sizes_for_several_cameras_is_one_line(capsys):
    """``--startup`` runs one camera; a size per camera of a mixed rig is for the load itself."""
    from fcn_perception.tools.cli import main

    assert main(["load", "--startup", "--size", "1280x720,640x480"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--startup runs one camera: give one --size" in err[0], err


def test_no_command_takes_a_bare_int_or_float():
    """Every number a command takes is checked where it is parsed (``tools/args.py``): a plain
    ``type=int`` lets 0 cameras or a negative thread count through to fail deep inside."""
    import argparse

    from fcn_perception.tools.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    bare = [f"{name} {'/'.join(a.option_strings)}" for name, sp in subparsers.choices.items() for a in sp._actions if a.type in (int, float)]
    assert not bare, bare


def test_demo_never_deletes_a_folder_that_is_not_its_own(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    res = _cli("demo", "--out", precious, timeout=120)
    assert _one_line_error(res) and "not an earlier demo output" in res.stderr
    assert (precious / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("flag", [("--camera-pose", "0,0,1.5"), ("--intrinsics", "460,x,240,180,480,360")])
def test_eval_lanes_refuses_a_bad_camera_in_one_line(flag, tmp_path):
    res = _cli("eval", "--data", tmp_path, "--lanes", *flag)
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_segment_with_a_stated_camera_draws_the_lane_boundaries(camvid, tmp_path):
    """Without a pose: class colours only; with --camera-pose: the ego boundaries too (cyan, magenta)."""
    frame = sorted((camvid / "val").iterdir())[20]  # a frame of the 0016E5 drive, its lane lines in view
    plain = _cli("segment", frame, "--out", tmp_path / "plain", "--threads", "2")
    posed = _cli("segment", frame, "--out", tmp_path / "posed", "--threads", "2", "--camera-pose", "0,0,1.5,0,0,0")
    assert plain.returncode == 0 and posed.returncode == 0, posed.stderr
    a = cv2.imread(str(tmp_path / "plain" / f"{frame.stem}_overlay.png"))
    b = cv2.imread(str(tmp_path / "posed" / f"{frame.stem}_overlay.png"))

    def boundary_pixels(img) -> int:
        return int(np.all(img == (255, 255, 0), axis=2).sum() + np.all(img == (255, 0, 255), axis=2).sum())

    assert boundary_pixels(a) == 0 and boundary_pixels(b) > 100
    bad = _cli("segment", frame, "--out", tmp_path / "bad", "--camera-pose", "0,0,1.5")
    assert bad.returncode == 2 and not (tmp_path / "bad").exists()


def test_load_with_a_parameter_the_node_refuses_says_the_nodes_reason_in_one_line():
    res = _cli("load", "--frames", "5", "--param", "input_width:=320", timeout=120)
    assert _one_line_error(res), res.stderr
    assert "input_width needs input_height" in res.stderr
