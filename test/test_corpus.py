"""Replaying a corpus: several recordings of different kinds (one not a bag), in worker processes or
on Ray, resumable after kill -9, the same masks as single-bag replays."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fcn_perception.bags.bag_io import BagWriter, read_messages
from fcn_perception.bags.replay import replay
from fcn_perception.waiting import wait_until

REPO = Path(__file__).resolve().parents[1]
GOOD = ("fleet/a", "fleet/day2/two_cameras", "fleet/day2/c", "fleet/d")  # outputs, relative to --out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sample_bag, two_camera_bag):
    """A metadata.yaml bag, a two-camera bag in a subfolder, a bare cut-short .mcap, an sqlite3 bag,
    two files that are not rosbag2 recordings, and a note beside them."""
    root = tmp_path_factory.mktemp("corpus") / "fleet"
    shutil.copytree(sample_bag, root / "a")
    shutil.copytree(two_camera_bag, root / "day2" / "two_cameras")
    shutil.copy(next(sample_bag.glob("*.mcap")), root / "day2" / "c.mcap")
    with BagWriter(root / "d", storage="sqlite3") as bag:
        for m in read_messages(sample_bag):
            bag.write(m.topic, m.msgtype, m.timestamp, m.msg)
    (root / "day2" / "not_a_bag.mcap").write_bytes(os.urandom(4096))
    (root / "old_drive.bag").write_bytes(b"#ROSBAG V2.0\n" + os.urandom(2048))  # ROS 1: not a rosbag2 recording
    (root / "notes.md").write_text("drives of the week\n")
    return root


@pytest.fixture(scope="module")
def singles(corpus, tmp_path_factory):
    """Each good recording replayed alone, as `replay IN --out OUT` does: the reference masks."""
    out = tmp_path_factory.mktemp("singles")
    for rel in GOOD:
        src = corpus.parent / rel if (corpus.parent / rel).exists() else corpus.parent / (rel + ".mcap")
        replay(src, out / rel, progress=False)
    return out


def _cli(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "fcn_perception", "replay", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def _masks(bag: Path) -> dict:
    return {(m.topic, m.timestamp): bytes(m.msg.data) for m in read_messages(bag) if m.topic.endswith("segmentation/mask")}


def _same_outputs(out: Path, singles: Path) -> None:
    for rel in GOOD:
        got, want = _masks(out / rel), _masks(singles / rel)
        assert got and got == want, rel


def test_two_workers_replay_every_good_recording_report_the_bad_one_and_rerun_skips_them(corpus, singles, tmp_path):
    out = tmp_path / "out"
    res = _cli(corpus, "--out", out, "--workers", "2")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "2 of 6 recordings failed (reasons in corpus.json)"
    report = json.loads((out / "corpus.json").read_text())
    by_output = {Path(o["output"]).relative_to(out).as_posix(): o for o in report["inputs"]}
    assert sorted(by_output) == sorted([*GOOD, "fleet/day2/not_a_bag", "fleet/old_drive"])
    bad = by_output.pop("fleet/day2/not_a_bag")
    assert bad["status"] == "failed" and "not a rosbag2 storage file" in bad["reason"]
    ros1 = by_output.pop("fleet/old_drive")
    assert ros1["status"] == "failed" and "not a rosbag2 recording" in ros1["reason"]
    assert all(o["status"] == "done" and o["masks"] == o["frames"] > 0 for o in by_output.values())
    assert by_output["fleet/day2/two_cameras"]["frames"] == 80 and "no metadata.yaml" in by_output["fleet/day2/c"]["cut_short"]
    assert report["ignored_files"] == [str(corpus / "notes.md")] and report["totals"]["workers"] == 2
    _same_outputs(out, singles)
    stamps = {rel: (out / rel / "fcn_replay.json").stat().st_mtime_ns for rel in GOOD}
    again = _cli(corpus, "--out", out, "--workers", "2")
    report2 = json.loads((out / "corpus.json").read_text())
    assert again.returncode == 1 and [o["status"] for o in report2["inputs"]].count("skipped") == 4
    assert {rel: (out / rel / "fcn_replay.json").stat().st_mtime_ns for rel in GOOD} == stamps  # not one rewritten
    assert report2["totals"]["frames"] == 0  # nothing replayed again
    forced = _cli(corpus, "--out", out, "--workers", "2", "--force")
    assert [o["status"] for o in json.loads((out / "corpus.json").read_text())["inputs"]].count("done") == 4, forced.stdout


def test_a_corpus_exports_its_least_sure_frames_over_every_recording(corpus, tmp_path):
    """Each worker keeps its cameras' candidates; the pick over the corpus is the same as picking
    over every kept candidate at once, with the gap kept per camera of each recording."""
    from fcn_perception.bags.label_export import Candidate, spread_lowest

    out, export = tmp_path / "out", tmp_path / "label_me"
    res = _cli(corpus, "--out", out, "--workers", "2", "--confidence", "--export-uncertain", export, "--top", "6", "--min-gap", "0.5")
    assert res.returncode == 1 and f"wrote the least sure frames to label to {export}" in res.stdout, res.stderr[-2000:]
    report = json.loads((out / "corpus.json").read_text())
    kept = [Candidate(**c) for o in report["inputs"] for c in o["uncertain"]]
    want = spread_lowest(kept, 6, 0.5)
    rows = (export / "frames.csv").read_text().splitlines()[1:]
    assert [tuple(r.split(",")[:3]) for r in rows] == [(c.bag, c.topic, str(c.stamp_ns)) for c in want]
    assert len({c.bag for c in want}) > 1  # the corpus's least sure frames, not one drive's
    assert len(list((export / "frames" / "images").iterdir())) == 6
    for o in report["inputs"]:
        if o["status"] == "done":
            assert all(0.5 < v <= 1.0 for v in o["drivable_confidence"].values())
            counts = {}
            for m in read_messages(Path(o["output"])):
                counts[m.topic] = counts.get(m.topic, 0) + 1
            assert sum(n for t, n in counts.items() if t.endswith("segmentation/confidence")) == o["masks"]


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]


def _start(corpus: Path, out: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    cmd = [sys.executable, "-m", "fcn_perception", "replay", str(corpus), "--out", str(out), "--workers", "2"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for(predicate, timeout=60.0) -> bool:
    return wait_until(predicate, timeout, 0.02)


def test_kill_9_of_the_whole_run_then_rerun_gives_the_uninterrupted_outputs(corpus, singles, tmp_path):
    out = tmp_path / "out"
    run = _start(corpus, out)
    assert _wait_for(lambda: any(out.rglob(".partial-*/*")) if out.exists() else False), "no bag was ever in progress"
    os.killpg(run.pid, signal.SIGKILL)  # the run and both workers, mid-bag
    run.wait(30)
    half_written = [p for p in out.rglob(".partial-*")]
    assert half_written  # the kill left work in progress behind ...
    assert not any((out / rel / "fcn_replay.json").is_file() and not (out / rel / "metadata.yaml").is_file() for rel in GOOD)
    res = _cli(corpus, "--out", out, "--workers", "2")
    assert res.returncode == 1, res.stderr[-2000:]
    assert not any(out.rglob(".partial-*"))  # ... never taken as done: cleaned and redone
    _same_outputs(out, singles)


def test_a_worker_killed_mid_bag_fails_that_bag_only_and_a_rerun_redoes_it(corpus, singles, tmp_path):
    """Killed at a known point: worker 0 stops itself at frame 12 of its first recording (no race
    with a short bag), the test kills it there."""
    from fcn_perception.bags.corpus import STOP_WORKER_AT_ENV

    out = tmp_path / "out"
    run = _start(corpus, out, {STOP_WORKER_AT_ENV: "12"})
    victim = {}

    def a_worker_stopped_mid_bag() -> bool:
        for part in out.rglob(".partial-*") if out.exists() else []:
            pid = int(part.name.rsplit("-", 1)[1])
            stat = Path(f"/proc/{pid}/stat")
            if pid in _children(run.pid) and stat.is_file() and stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
                victim["pid"], victim["output"] = pid, part.name.split("-", 1)[1].rsplit("-", 1)[0]
                return True
        return False

    assert _wait_for(a_worker_stopped_mid_bag), "worker 0 never stopped mid-bag"
    os.kill(victim["pid"], signal.SIGKILL)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in stderr, stderr[-2000:]
    report = json.loads((out / "corpus.json").read_text())
    died = [o for o in report["inputs"] if "worker process died" in o["reason"]]
    assert len(died) == 1 and Path(died[0]["output"]).name == victim["output"] and "-9" in died[0]["reason"]
    assert sum(o["status"] == "done" for o in report["inputs"]) == 3  # the others finished
    assert not any(out.rglob(".partial-*"))
    res = _cli(corpus, "--out", out, "--workers", "2")
    statuses = sorted(o["status"] for o in json.loads((out / "corpus.json").read_text())["inputs"])
    assert statuses == ["done", "failed", "failed", "skipped", "skipped", "skipped"], res.stdout
    _same_outputs(out, singles)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is an optional extra (in the lock; tools/bootstrap.sh installs it)")
def test_ray_local_gives_the_same_outcomes_and_masks(corpus, singles, tmp_path):
    out = tmp_path / "out"
    res = _cli(corpus, "--out", out, "--ray", "local", "--workers", "2")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    report = json.loads((out / "corpus.json").read_text())
    assert sorted(o["status"] for o in report["inputs"]) == ["done"] * 4 + ["failed"] * 2 and report["totals"]["ray"] == "local"
    _same_outputs(out, singles)


def test_ray_missing_is_one_line_and_exit_code_2(corpus, tmp_path):
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError('ray is not installed (test)')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{REPO}"}
    cmd = [sys.executable, "-m", "fcn_perception", "replay", str(corpus), "--out", str(tmp_path / "o"), "--ray", "local"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr and not (tmp_path / "o").exists()
    assert res.stderr.strip() == "fcn-perception replay: error: --ray needs Ray: pip install 'fcn_perception[ray]' (or the ray version pinned in requirements/)"
