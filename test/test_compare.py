"""``compare``: a model against itself agrees completely; a damaged copy is caught, and the report
shows the frames it changed most (images embedded and decodable)."""

from __future__ import annotations

import base64
import contextlib
import csv
import html
import io
import itertools
import json
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

from fcn_perception.inference.model_store import default_model_path
from fcn_perception.model.fcn import load_model, save_checkpoint
from fcn_perception.tools.cli import main as cli


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """The shipped checkpoint with noise on its stride-8 class scores: some frames change a lot."""
    model = load_model(default_model_path("pt"))
    with torch.no_grad():
        w = model.score["8"].weight
        w.add_(torch.randn(w.shape, generator=torch.Generator().manual_seed(0)) * 0.3)
    path = tmp_path_factory.mktemp("models") / "damaged.pt"
    save_checkpoint(path, model)
    return path


def _images(page: str, cls: str) -> list[np.ndarray]:
    found = re.findall(rf"<img class='{cls}' alt='[^']*' src='data:image/(?:png|jpeg);base64,([^']+)'>", page)
    return [cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_COLOR) for b in found]


def test_a_model_against_itself_agrees_and_exits_0(sample_bag, tmp_path, capsys):
    model = str(default_model_path("int8"))
    assert cli(["compare", str(sample_bag), "--baseline", model, "--candidate", model, "--report", str(tmp_path), "--min-agreement", "0.999"]) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["mean_drivable_iou"] == 1.0 and len(data["frames"]) == 40
    assert all({"bag", "topic", "stamp_ns", "drivable_iou", "ego_iou"} <= set(f) and f["ego_iou"] == 1.0 for f in data["frames"])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("ok:")


@pytest.fixture(scope="module")
def damaged_report(sample_bag, damaged, tmp_path_factory):
    """compare of the shipped checkpoint against its damaged copy, once: (exit code, printed lines,
    report folder, export folder)."""
    out = tmp_path_factory.mktemp("report")
    export = out / "label_me"
    args = ["compare", str(sample_bag), "--baseline", str(default_model_path("pt")), "--candidate", str(damaged), "--report", str(out)]
    args += ["--min-agreement", "0.99", "--top", "4", "--export-uncertain", str(export), "--min-gap", "0.5"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = cli(args)
    return code, printed.getvalue().strip().splitlines(), out, export


def test_a_damaged_copy_fails_the_gate_and_the_page_shows_what_changed(damaged_report):
    code, lines, out, _ = damaged_report
    assert code == 1
    assert lines[-1].startswith("FAIL: mean drivable agreement")
    data = json.loads((out / "report.json").read_text())
    ious = sorted(f["drivable_iou"] for f in data["frames"])
    assert data["mean_drivable_iou"] < 0.99 and ious[0] < ious[-1]
    assert 0.5 < data["mean_confidence_a"] <= 1.0 and 0.0 < data["mean_confidence_b"] <= 1.0
    page = (out / "report.html").read_text()
    plots, frames = _images(page, "plot"), _images(page, "frame")
    assert len(plots) == 1 and all(p is not None for p in plots)
    assert len(frames) == 4 and all(f is not None and f.shape[1] == 3 * 480 for f in frames)  # A | B | difference
    shown = [float(v) for v in re.findall(r"drivable IoU ([0-9.]+), ego IoU", page)]
    assert shown == ious[:4]  # the frames that changed most, worst first
    conf = np.array(data["confusion"])
    assert conf.shape == (12, 12) and conf.sum() == 40 * 480 * 360


def test_export_uncertain_of_compare_writes_the_frames_the_models_disagree_on_most(damaged_report):
    _, _, out, export = damaged_report
    frames = json.loads((out / "report.json").read_text())["frames"]
    with open(export / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and len(list((export / "frames" / "labels").iterdir())) == 4
    agreement = [float(r["drivable_iou"]) for r in rows]
    assert agreement == sorted(agreement) and agreement[0] == pytest.approx(min(f["drivable_iou"] for f in frames), abs=1e-4)
    stamps = sorted(int(r["stamp_ns"]) for r in rows)
    assert all(b - a >= 0.5e9 for a, b in itertools.pairwise(stamps))
    # every frame left out agrees better than the last picked, or is within the gap of a picked one
    picked = {int(r["stamp_ns"]) for r in rows}
    for f in frames:
        if f["stamp_ns"] not in picked and f["drivable_iou"] < agreement[-1] - 1e-4:
            assert any(abs(f["stamp_ns"] - s) < 0.5e9 for s in picked)


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


#: appended to a copy of the page: after the load event, what the browser made of its images
PROBE = """<script>
window.addEventListener('load', () => {
  const ok = (sel) => [...document.querySelectorAll(sel)].filter((i) => i.complete && i.naturalWidth > 0).length;
  const r = {images: document.images.length, decoded: ok('img'), plots: document.querySelectorAll('img.plot').length,
             plots_decoded: ok('img.plot'), frames_decoded: ok('img.frame'), rows: document.querySelectorAll('table tr').length};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(r); document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(_chromium() is None, reason="no headless Chromium here (Debian's chromium package; .ci/run installs it)")
def test_the_report_opens_in_headless_chromium_with_every_image_decoded(damaged_report, tmp_path):
    _, _, out, _ = damaged_report
    page = tmp_path / "probe.html"
    page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    run = subprocess.run([*cmd, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", run.stdout)
    assert found, f"no probe in the rendered page (exit {run.returncode}): {run.stderr[-2000:]}"
    seen = json.loads(html.unescape(found.group(1)))
    assert seen["images"] == seen["decoded"] == 1 + 4, seen  # one agreement plot (one camera) + the 4 frames
    assert seen["plots"] == seen["plots_decoded"] == 1 and seen["frames_decoded"] == 4
    assert seen["rows"] == 13  # the confusion table: a header row and one per baseline class
