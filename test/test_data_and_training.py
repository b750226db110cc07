import numpy as np
import pytest
import torch

from fcn_perception.model.classes import CAMVID_CLASSES, VOID_ID
from fcn_perception.model.fcn import ModelConfig, build_model, load_model
from fcn_perception.training.datasets import LabelReader, class_frequencies, class_weights, open_split
from fcn_perception.training.patches import AugmentConfig, SegmentationDataset, Source, train_transform
from fcn_perception.training.train import TrainConfig, sample_loss_cells, train


def _source(root, split, n=None):
    ds = open_split(root, split)
    if n is not None:
        ds.pairs = ds.pairs[:n]
    return Source(ds, LabelReader(ds, CAMVID_CLASSES))


def test_camvid_layout_and_median_frequency_weights(camvid):
    train_split = open_split(camvid, "train")
    assert train_split.layout == "segnet"
    assert len(train_split.pairs) == 367 and len(open_split(camvid, "val").pairs) == 101
    labels = LabelReader(train_split, CAMVID_CLASSES)
    freqs = class_frequencies((labels(lab) for _, lab in train_split.pairs), 11)
    w = class_weights(*freqs, "median_freq")
    assert w.shape == (11,)
    assert float(np.median(w)) == pytest.approx(1.0)  # median class gets weight 1 by definition
    road, pedestrian = w[3], w[9]
    assert road < 0.3 < 3 < pedestrian  # frequent road down-weighted, rare pedestrians up-weighted
    assert class_weights(*freqs, "none") is None
    with pytest.raises(ValueError):
        class_weights(*freqs, "bogus")


def test_patchwise_augmented_samples(camvid):
    cfg = AugmentConfig(crop=(200, 240), scale=(0.3, 0.4))  # small scale forces padding
    ds = SegmentationDataset([_source(camvid, "train", 2)], (0.5,) * 3, (0.25,) * 3, 360, train_transform(cfg, seed=0), patches=3)
    x, y = ds[0]
    assert x.shape == (3, 3, 200, 240) and y.shape == (3, 200, 240)
    assert (y == VOID_ID).any(), "padding must be void so it never enters the loss"
    assert set(torch.unique(y).tolist()) <= set(range(11)) | {VOID_ID}
    assert not (y == 11).any(), "CamVid's own void id 11 must become VOID_ID"


def test_loss_sampling_drops_whole_cells():
    target = torch.zeros(4, 64, 96, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    out = sample_loss_cells(target, 0.5, cell=32, generator=gen)
    kept = (out != VOID_ID).float().mean().item()
    assert 0.2 < kept < 0.8
    cells = out.view(4, 2, 32, 3, 32)  # each 32x32 cell is all kept or all dropped
    assert torch.all((cells == VOID_ID).all(4).all(2) | (cells != VOID_ID).all(4).all(2))
    assert sample_loss_cells(target, 1.0) is target


def test_a_few_steps_reduce_the_loss_on_real_frames(camvid):
    """Eight steps of the project's own epoch loop (``train_one_epoch``: loss sampling, the LR
    schedule, the partial-label loss) on two real frames bring the project's loss down."""
    from tqdm import tqdm

    from fcn_perception.training.label_space import LabelSpace
    from fcn_perception.training.train import Budget, State, partial_cross_entropy, train_one_epoch

    torch.manual_seed(0)
    mc = ModelConfig()
    ds = SegmentationDataset([_source(camvid, "train", 2)], mc.mean, mc.std, height=120)
    x = torch.stack([ds[i][0] for i in range(2)])
    y = torch.stack([ds[i][1] for i in range(2)])
    assert x.shape == (2, 3, 120, 160)  # the frame's own 4:3 at the requested height
    cfg = TrainConfig(iterations=8, warmup=1, lr=2e-3, loss_sampling=1.0)
    model = build_model(mc, pretrained=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    members = torch.from_numpy(LabelSpace(mc.classes).membership())
    loader = [(x[None], y[None])] * cfg.iterations  # one "image" per step, its two patches the two frames
    state, budget = State(), Budget(cfg, 0.0, 1)

    def loss() -> float:
        with torch.no_grad():
            return partial_cross_entropy(model.eval()(x), y, members).item()

    before = loss()
    done = train_one_epoch(
        model, loader, opt, torch.amp.GradScaler("cuda", enabled=False), None, members, cfg, budget, state, torch.device("cpu"),
        torch.Generator().manual_seed(0), tqdm(disable=True), lambda: None,
    )  # fmt: skip
    assert state.step == cfg.iterations and not done
    assert loss() < 0.7 * before, (before, loss())


def _tiny_config(data, out) -> dict:
    """Two steps on a few frames: exercises the whole training loop in seconds."""
    return {
        "data": str(data),
        "out": str(out),
        "iterations": 2,
        "eval_every": 2,
        "batch_size": 2,
        "patches_per_image": 2,
        "workers": 0,
        "augment": {"crop": [96, 96]},
        "model": {"input_size": [160, 120]},
    }


def test_train_command_writes_checkpoints_logs_and_resumes(tiny_camvid, tmp_path):
    raw = _tiny_config(tiny_camvid, tmp_path / "run")
    best = train(TrainConfig.from_dict(raw))
    assert best.is_file() and (tmp_path / "run" / "last.pt").is_file()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("2,")
    raw["iterations"] = 4
    train(TrainConfig.from_dict(raw))  # resumes at step 2
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    model = load_model(best)
    assert model.cfg.input_size == (160, 120)
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"itertions": 3})


def test_select_only_scores_the_starting_model_as_its_run_logs_it(camvid, tmp_path):
    """A run's best checkpoint, scored again by --select-only from init, gives the row it was selected
    by, LaneMarking (a class past CamVid's 11, logged on its own) included."""
    import shutil

    from fcn_perception.training.train import select_only

    lanes, data = camvid.parent / "camvid_lanes", tmp_path / "lanes"
    for split, n in (("train", 4), ("val", 2)):
        for sub in ("images", "labels"):
            (data / split / sub).mkdir(parents=True)
            for f in sorted((lanes / split / sub).iterdir())[:n]:
                shutil.copy(f, data / split / sub / f.name)
    shutil.copy(lanes / "class_dict.csv", data / "class_dict.csv")
    classes = ["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist", "LaneMarking"]
    raw = {**_tiny_config(data, tmp_path / "run"), "model": {"input_size": [160, 120], "classes": classes}}
    raw.pop("data")
    raw["datasets"] = [{"path": str(data), "class_map": "config/class_maps/camvid32_to_lanes.yaml", "val_split": "val"}]
    best = train(TrainConfig.from_dict(raw))
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    header, logged = rows[0].split(","), rows[-1].split(",")
    again = select_only(TrainConfig.from_dict({**raw, "out": str(tmp_path / "again"), "init": str(best)}))["lanes/val"]
    assert float(logged[header.index("val_miou")]) == pytest.approx(again["miou"], abs=1e-4)
    assert float(logged[header.index("lanes/val:LaneMarking")]) == pytest.approx(again["per_class_iou"]["LaneMarking"] or 0.0, abs=1e-4)
    assert not (tmp_path / "again").exists()  # nothing trained, nothing written


def test_torchrun_ddp_on_cpu(tiny_camvid, tmp_path):
    """Two processes over gloo: the multi-GPU path minus the GPUs."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_tiny_config(tiny_camvid, tmp_path / "ddp")))
    torchrun = Path(sys.executable).parent / "torchrun"
    res = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "fcn_perception", "train", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "ddp" / "best.pt").is_file()
    assert (tmp_path / "ddp" / "log.csv").read_text().splitlines()[-1].startswith("2,")
