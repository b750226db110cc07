"""Pruning the trunk (training/prune.py): the widths asked for, a refit that beats plain dropping,
nothing else of the network touched, and a checkpoint that rebuilds the pruned network."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcn_perception.model.fcn import FCN, ModelConfig, load_model, save_checkpoint
from fcn_perception.training.prune import _project_io, distil, distillation_loss, frame_files, parse_ratios, prune, teacher_class_weights


def _net() -> FCN:
    torch.manual_seed(0)
    net = FCN(ModelConfig(variant="fcn8s")).eval()
    for m in net.modules():  # statistics of a trained network, every channel alive
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
            m.bias.data.uniform_(0.2, 1.0)
    return net


def _kept(net: FCN, pruned: FCN, block: int) -> torch.Tensor:
    """Which of the original's channels the pruned block kept (its depthwise filters are theirs)."""
    old, new = (n.backbone.blocks[block].dw.weight.detach().flatten(1) for n in (net, pruned))
    return (new[:, None] == old[None]).all(-1).nonzero()[:, 1]


def _frames(n: int = 6) -> list[torch.Tensor]:
    return list(torch.randn(n, 3, 64, 96, generator=torch.Generator().manual_seed(1)))


def test_ratios_name_blocks_and_ranges():
    assert parse_ratios("1-3:0.25,6:0.5") == {1: 0.25, 2: 0.25, 3: 0.25, 6: 0.5}


def test_pruned_blocks_keep_the_widths_asked_for_and_nothing_else_changes():
    net, frames = _net(), _frames()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pruned = prune(net, {1: 0.25, 2: 0.25, 6: 0.125}, frames)
    widths = [b.dw.out_channels for b in pruned.backbone.blocks]
    assert widths[1:3] == [64, 112] and widths[6] == 416 and widths[3] == 144 and widths[0] == 32
    assert pruned.cfg.hidden == tuple(widths)
    after = pruned.state_dict()
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the original is untouched
    for key, value in before.items():  # every block not pruned, the stem, the head and the scores: as they were
        block = int(key.split(".")[2]) if key.startswith("backbone.blocks.") else None
        if block not in (1, 2, 6):
            assert torch.equal(after[key], value), key
    keep = _kept(net, pruned, 1)
    assert len(keep) == 64  # the kept channels' statistics carried over, not re-estimated from the frames
    for name in ("bn_expand", "bn_dw"):
        for stat in ("running_mean", "running_var"):
            key = f"backbone.blocks.1.{name}.{stat}"
            assert torch.equal(after[key], before[key][keep]), key


def test_the_refit_matches_the_original_block_better_than_dropping_the_channels():
    net, frames = _net(), _frames()
    pruned = prune(net, {2: 0.25}, frames)
    _, target = _project_io(net, 2, frames)
    h_full, _ = _project_io(net, 2, frames)
    _, got = _project_io(pruned, 2, frames)
    kept = _kept(net, pruned, 2)
    dropped = net.backbone.blocks[2].project.weight.detach()[:, kept, 0, 0].double() @ h_full[kept]
    shift = (net.state_dict()["backbone.blocks.2.bn_project.running_mean"] - pruned.state_dict()["backbone.blocks.2.bn_project.running_mean"]).double()
    refit = ((got + shift[:, None] - target) ** 2).mean()
    assert refit < 0.7 * ((dropped - target) ** 2).mean()


def test_a_pruned_checkpoint_rebuilds_the_pruned_network(tmp_path):
    pruned = prune(_net(), {3: 0.5}, _frames(2))
    save_checkpoint(tmp_path / "p.pt", pruned)
    again = load_model(tmp_path / "p.pt")
    assert again.cfg.hidden == pruned.cfg.hidden and again.backbone.blocks[3].dw.out_channels == 64
    x = torch.randn(1, 3, 40, 72)
    with torch.no_grad():
        torch.testing.assert_close(again(x), pruned(x))


def test_a_run_from_a_pruned_checkpoint_trains_the_pruned_network(tmp_path):
    from fcn_perception.model.fcn import init_from_checkpoint
    from fcn_perception.training.train import TrainConfig, _model_and_optimizer

    pruned = prune(_net(), {4: 0.25}, _frames(2))
    save_checkpoint(tmp_path / "p.pt", pruned)
    cfg = TrainConfig.from_dict({"init": str(tmp_path / "p.pt"), "model": {"variant": "fcn8s"}})
    model, _ = _model_and_optimizer(cfg, torch.device("cpu"), 0)
    assert model.cfg.hidden == pruned.cfg.hidden
    x = torch.randn(1, 3, 40, 72)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), pruned(x))
    with pytest.raises(ValueError, match="block widths"):
        init_from_checkpoint(FCN(ModelConfig(variant="fcn8s")), tmp_path / "p.pt")


def test_the_onnx_metadata_says_the_trunk_is_pruned():
    from fcn_perception.model.config import config_from_metadata, metadata_for

    cfg = ModelConfig(hidden=[32, *[64] * 15])
    assert config_from_metadata(metadata_for(cfg, None)).hidden == cfg.hidden
    assert "hidden" not in metadata_for(ModelConfig(), None)  # an unpruned model's metadata as before


@pytest.mark.parametrize("spec", ["1-5", "1-5:x", "a:0.5", "3:1.0", "3:-0.1"])
def test_a_prune_spec_that_says_nothing_sensible_is_one_clear_error(spec):
    with pytest.raises(ValueError, match="--prune"):
        parse_ratios(spec)


def _prune_model(data: Path, *args: str) -> subprocess.CompletedProcess:
    """tools/prune_model.py on a tiny network and ``data`` (camvid/ and cityscapes/ of plain frames)."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "prune_model.py"
    return subprocess.run([sys.executable, str(tool), *args, "--data", str(data)], capture_output=True, text=True, timeout=120)


def _data_and_net(tmp_path: Path) -> tuple[Path, Path]:
    camvid, cityscapes = tmp_path / "camvid" / "train", tmp_path / "cityscapes" / "train" / "images"
    camvid.mkdir(parents=True)
    cityscapes.mkdir(parents=True)
    frame = np.full((36, 48, 3), 128, np.uint8)
    for i in range(24):
        cv2.imwrite(str(camvid / f"{i:03d}.png"), frame)
    for i in range(174):
        cv2.imwrite(str(cityscapes / f"{i:03d}.jpg"), frame)
    ckpt = tmp_path / "net.pt"
    save_checkpoint(ckpt, FCN(ModelConfig(variant="fcn8s", input_size=(48, 36))).eval())
    return camvid, ckpt


def test_distilling_further_keeps_the_pruned_widths_and_counts_every_step(tmp_path):
    _, ckpt = _data_and_net(tmp_path)
    first = _prune_model(tmp_path, str(ckpt), str(tmp_path / "p.pt"), "--prune", "1:0.25", "--minutes", "0")
    assert first.returncode == 0, first.stderr
    again = _prune_model(tmp_path, str(ckpt), str(tmp_path / "p2.pt"), "--resume", str(tmp_path / "p.pt"), "--minutes", "0.005")
    assert again.returncode == 0, again.stderr
    pruned, resumed = (torch.load(tmp_path / p, weights_only=True) for p in ("p.pt", "p2.pt"))
    assert pruned["config"]["hidden"] == resumed["config"]["hidden"] != []
    assert pruned["distil_steps"] == 0 < resumed["distil_steps"]
    assert pruned["prune"] == resumed["prune"] == "1:0.25"  # what was pruned, not --prune's default
    assert f"{resumed['distil_steps']} distillation steps" in again.stdout


def test_a_long_distillation_saves_what_it_learned_as_it_goes(tmp_path):
    """A stopped run of hours keeps its steps: ``save`` is called on the clock, with the steps so far."""
    _data_and_net(tmp_path)
    teacher = FCN(ModelConfig(variant="fcn8s", input_size=(48, 36))).eval()
    student = prune(teacher, {1: 0.25}, _frames())
    saved: list[int] = []
    steps = distil(student, teacher, frame_files(tmp_path, holdout=0), minutes=0.01, batch=1, save=saved.append, save_minutes=0.0)
    assert saved == list(range(1, steps + 1))


def test_class_weights_decide_what_each_pixel_counts_in_the_distillation():
    """The loss of ``--balance``: a pixel counts by the weight of the class the teacher gives it."""
    teacher, student = torch.randn(2, 2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    teacher[:, 0, :, :2] += 10.0  # class 0 on the left, class 2 elsewhere
    teacher[:, 2, :, 2:] += 10.0
    alike = distillation_loss(student, teacher)
    assert torch.isclose(alike, distillation_loss(student, teacher, torch.ones(3)))
    only_left = distillation_loss(student, teacher, torch.tensor([1.0, 1.0, 0.0]))
    changed = student.clone()
    changed[:, :, :, 2:] = torch.randn_like(changed[:, :, :, 2:])  # the student elsewhere
    assert torch.isclose(only_left, distillation_loss(changed, teacher, torch.tensor([1.0, 1.0, 0.0])))
    assert not torch.isclose(alike, distillation_loss(changed, teacher))
    left = F.kl_div(F.log_softmax(student[..., :2], 1), F.log_softmax(teacher[..., :2], 1), log_target=True, reduction="none").sum(1).mean()
    assert torch.isclose(only_left, left)


def test_the_teachers_rare_classes_weigh_more():
    teacher = _net()
    frames = _frames()
    with torch.no_grad():
        ids = torch.cat([teacher(f[None]).argmax(1).flatten() for f in frames])
    counts = torch.bincount(ids, minlength=len(teacher.cfg.classes))
    w = teacher_class_weights(teacher, frames, 0.5)
    seen = counts.nonzero().flatten()
    assert len(seen) >= 2 and counts[seen].min() < counts[seen].max()
    assert w[seen[counts[seen].argmax()]] < w[seen[counts[seen].argmin()]]
    assert torch.allclose(teacher_class_weights(teacher, frames, 1.0) ** 0.5, w)


def test_a_damaged_checkpoint_to_resume_is_one_line_and_exit_1(tmp_path):
    _, ckpt = _data_and_net(tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    run = _prune_model(tmp_path, str(ckpt), str(tmp_path / "out.pt"), "--resume", str(tmp_path / "bad.pt"), "--minutes", "0")
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and "not a loadable fcn_perception checkpoint" in run.stderr
    assert not (tmp_path / "out.pt").exists()


def test_a_damaged_frame_in_the_data_is_one_line_and_exit_1(tmp_path):
    """prune_model reads real frames to refit on; one that cannot be decoded names itself."""
    camvid, ckpt = _data_and_net(tmp_path)
    (camvid / "005.png").write_bytes(b"not a png")
    run = _prune_model(tmp_path, str(ckpt), str(tmp_path / "out.pt"), "--prune", "1:0.25", "--minutes", "0")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"prune_model: cannot read image {camvid / '005.png'}"]
    assert not (tmp_path / "out.pt").exists()
