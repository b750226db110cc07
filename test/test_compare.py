"""``compare``: a model against itself agrees completely; a damaged copy is caught, and the report
shows the frames it changed most (images embedded and decodable)."""

from __future__ import annotations

import base64
import json
import re

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


def test_a_damaged_copy_fails_the_gate_and_the_page_shows_what_changed(sample_bag, damaged, tmp_path, capsys):
    base = str(default_model_path("pt"))
    code = cli(
        ["compare", str(sample_bag), "--baseline", base, "--candidate", str(damaged), "--report", str(tmp_path), "--min-agreement", "0.99", "--top", "4"]
    )
    assert code == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("FAIL: mean drivable agreement")
    data = json.loads((tmp_path / "report.json").read_text())
    ious = sorted(f["drivable_iou"] for f in data["frames"])
    assert data["mean_drivable_iou"] < 0.99 and ious[0] < ious[-1]
    page = (tmp_path / "report.html").read_text()
    plots, frames = _images(page, "plot"), _images(page, "frame")
    assert len(plots) == 1 and all(p is not None for p in plots)
    assert len(frames) == 4 and all(f is not None and f.shape[1] == 3 * 480 for f in frames)  # A | B | difference
    shown = [float(v) for v in re.findall(r"drivable IoU ([0-9.]+), ego IoU", page)]
    assert shown == ious[:4]  # the frames that changed most, worst first
    conf = np.array(data["confusion"])
    assert conf.shape == (12, 12) and conf.sum() == 40 * 480 * 360
