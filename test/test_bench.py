"""Smoke tests of the benchmark commands: they run and write the documented JSON keys. They assert
no speed (a timed unit test on a shared machine measures the machine); the figures are in
BENCHMARKS.md, from the commands there."""

import json
import os
import subprocess
import sys

import pytest


def _bench(tmp_path, *args):
    """Every bench names the CPU it ran on, by its instruction sets, in its output and its JSON:
    "AMD EPYC" alone is two machines whose figures differ twofold (fcn_perception/cpu.py)."""
    from fcn_perception.cpu import this_cpu

    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    res = subprocess.run([sys.executable, "-m", "fcn_perception", "bench", *args, "--json", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    written = json.loads(out.read_text())
    assert this_cpu().describe() in res.stdout and written["cpu"] == this_cpu().describe(), res.stdout
    return written


def test_smoke_pipeline_bench_writes_the_documented_keys(tmp_path):
    res = _bench(tmp_path, "--backend", "onnxruntime", "--size", "160x120", "--frames", "3", "--warmup", "1", "--peers-python", "")
    assert {"end_to_end_ms", "stages_ms", "fps", "floor_ms", "backend", "size", "peers"} <= set(res)
    assert set(res["end_to_end_ms"]) == {"p50", "p95", "p99"} and res["size"] == "160x120"
    assert {"decode", "preprocess", "infer", "postprocess", "drivable", "publish_conversion"} <= set(res["stages_ms"])


@pytest.mark.parametrize("mode", ["--ros-overhead", "--drivable"])
def test_smoke_ros_overhead_and_drivable_benches(tmp_path, mode):
    res = _bench(tmp_path, mode, "--size", "320x240", "--frames", "5")
    if mode == "--drivable":
        assert 3 <= res["max_vertices_per_ring"] <= res["vertex_budget"] and set(res["ms"]) == {"p50", "p95", "p99"}
    else:
        assert res["received"] == res["sent"] == 15  # every frame (5 + 10 warm-up) came back through DDS


def test_frame_path_bench_times_every_stage_of_a_camera_sized_frame(tmp_path):
    """Every stage ran on every frame (the ground and lane stages too: the sample's CameraInfo and
    pose), and the stages are the frame: their sum is within the total. On one thread the process
    spends no more CPU than time: no library spins a helper thread (OpenCV's pool did, +10 %)."""
    res = _bench(tmp_path, "--frame-path", "--size", "640x480", "--frames", "3", "--warmup", "1")
    stages = [s for s in res["ms"] if s not in ("total", "cpu")]
    assert res["ms"]["cpu"]["p50"] <= 1.05 * res["ms"]["total"]["p50"] + 0.3, res["ms"]
    assert set(stages) == {"decode", "preprocess", "infer", "postprocess", "drivable", "ground", "lanes", "build", "serialize", "fusion"}
    assert res["frames_with_ground"] == res["frames_with_lanes"] == 3 and all(res["ms"][s]["p50"] > 0 for s in stages), res
    assert sum(res["ms"][s]["p50"] for s in stages) <= 1.2 * res["ms"]["total"]["p95"] and res["size"] == "640x480"
    assert res["coarse_reused"] == "2/4"  # 30 Hz stamps, coarse_reuse_ms 70: the 2nd and 3rd frames reuse the 1st's
    cap = res["network_capacity"]  # the rig's ceiling: the network alone, one stream per camera
    assert cap["cameras"] == cap["streams"] == 2 and cap["fps"] > 0 and cap["rig_30hz_share"] == round(60 / cap["fps"], 3)


def test_summary_quotes_the_median_of_per_round_ratios_against_the_peer():
    from fcn_perception.tools.bench import summarise

    def round_(ours, peer):
        ratio = round(ours / peer, 3)
        peers = {"lraspp": {"backend": "openvino", "precision": "bf16", "end_to_end_ms": {"p50": peer}, "ours_infer_over_peer": ratio}}
        return {
            "backend": "openvino-cpu",
            "model": "m",
            "precision": "int8",
            "end_to_end_ms": {"p50": ours + 1},
            "stages_ms": {"infer": {"p50": ours}},
            "peers": peers,
        }

    # round by round 0.5, 2.0, 0.9: the median ratio (0.9) is not the ratio of the medians (10 / 12)
    s = summarise([round_(10, 20), round_(20, 10), round_(9, 10)])
    assert s["ours/peer lraspp, inference"]["ratio"] == {"median": 0.9, "min": 0.5, "max": 2.0, "n": 3}
    assert s["peer lraspp (openvino, bf16)"]["infer"]["median"] == 10
