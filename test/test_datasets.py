"""Labelled data a user brings: the generic colour layout, class maps, fine-tuning onto a new class."""

from __future__ import annotations

import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from fcn_perception.model.classes import CAMVID_CLASSES, VOID_ID, palette_bgr
from fcn_perception.training.datasets import DatasetError, LabelReader, id_lut, open_split
from fcn_perception.training.patches import AugmentConfig, MixSampler, SegmentationDataset, Source, seed_worker, train_transform
from fcn_perception.training.train import TrainConfig, train

LANE = "LaneMarking"
NEW = "Stripe"  # a class of a user's own labels that the shipped model (CamVid's 11 + LaneMarking) lacks


def _write_generic(root, camvid, n_train=4, n_val=2, lane=False, unknown_pixels=0, lane_name=LANE):
    """Real CamVid frames re-written in the generic layout: class_dict.csv + colour PNG labels.
    With ``lane``, white stripes painted on the road become a 12th class, as a user's own labels would."""
    root.mkdir(parents=True)
    rgb = palette_bgr(11)[:11, ::-1]
    classes = [(name, *map(int, rgb[i])) for i, name in enumerate(CAMVID_CLASSES)]
    if lane:
        classes.append((lane_name, 255, 255, 255))
    classes.append(("void", 0, 0, 0))
    with open(root / "class_dict.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "r", "g", "b"])
        w.writerows(classes)
    colours = np.array([c[1:] for c in classes], np.uint8)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "labels").mkdir(parents=True)
        src = open_split(camvid, split)
        for frame, label in src.pairs[:n]:
            img = cv2.imread(str(frame))
            ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED).astype(np.int64)
            ids[ids > 10] = len(classes) - 1  # CamVid void -> the csv's void
            if lane:
                stripes = np.zeros(ids.shape, bool)
                for x in range(40, 480, 90):
                    stripes[:, x : x + 14] = True
                stripes &= ids == CAMVID_CLASSES.index("Road")
                ids[stripes] = 11
                img[stripes] = (255, 255, 255)
            lab = colours[ids]
            if unknown_pixels:
                lab.reshape(-1, 3)[:unknown_pixels] = (1, 2, 3)  # a colour in no class
            cv2.imwrite(str(root / split / "images" / (frame.stem + ".jpg")), img)
            cv2.imwrite(str(root / split / "labels" / (frame.stem + ".png")), lab[:, :, ::-1])
    return root


def test_generic_colour_labels_read_as_the_camvid_ids(tmp_path, camvid):
    root = _write_generic(tmp_path / "g", camvid, unknown_pixels=500)
    ds = open_split(root, "train")
    assert ds.layout == "generic" and ds.classes[-1] == "void" and len(ds.pairs) == 4
    reader = LabelReader(ds, CAMVID_CLASSES)
    ids = reader(ds.pairs[0][1])
    ref = cv2.imread(str(open_split(camvid, "train").pairs[0][1]), cv2.IMREAD_UNCHANGED)
    ref = np.where(ref > 10, VOID_ID, ref)
    ref.reshape(-1)[:500] = VOID_ID
    assert np.array_equal(ids, ref)
    assert reader.unknown_pixels == 500


def test_single_channel_id_labels_in_csv_order(tmp_path, camvid):
    root = _write_generic(tmp_path / "g", camvid, n_train=1, n_val=1)
    label = root / "train" / "labels" / sorted((root / "train" / "labels").iterdir())[0].name
    colour = cv2.imread(str(label))
    reader = LabelReader(open_split(root, "train"), CAMVID_CLASSES)
    expected = reader(label)
    cv2.imwrite(str(label), np.where(expected == VOID_ID, 11, expected).astype(np.uint8))
    assert colour.ndim == 3 and np.array_equal(reader(label), expected)


def test_class_map_must_account_for_every_class():
    cs = ["road", "sidewalk", "terrain", "void"]
    lut = id_lut(cs, CAMVID_CLASSES, {"road": "Road", "sidewalk": "Pavement", "terrain": "void"})
    assert list(lut[:4]) == [3, 4, VOID_ID, VOID_ID] and lut[200] == VOID_ID
    with pytest.raises(DatasetError, match=r"no entry for dataset classes \['terrain'\]"):
        id_lut(cs, CAMVID_CLASSES, {"road": "Road", "sidewalk": "Pavement"})
    with pytest.raises(DatasetError, match=r"targets \['Sidewalk'\] are not model classes"):
        id_lut(cs, CAMVID_CLASSES, {"road": "Road", "sidewalk": "Sidewalk", "terrain": "void"})
    with pytest.raises(DatasetError, match=r"names \['raod'\]"):
        id_lut(cs, CAMVID_CLASSES, {"road": "Road", "raod": "Road", "sidewalk": "Pavement", "terrain": "void"})
    with pytest.raises(DatasetError, match="give a class map"):
        id_lut(cs, CAMVID_CLASSES, None)


def test_a_folder_in_no_layout_says_what_it_expected(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match=r"class_dict.csv \+ val/images/ \+ val/labels/ \(generic\) or val/ \+ valannot/"):
        open_split(tmp_path / "x", "val")


@pytest.mark.parametrize("damage", ["missing_label", "wrong_size", "empty_split", "unreadable_frame"])
def test_eval_bad_data_is_one_line_and_exit_2(tmp_path, camvid, damage):
    root = _write_generic(tmp_path / "g", camvid, n_train=1, n_val=2)
    val = root / "val"
    frame = sorted((val / "images").iterdir())[0]
    label = val / "labels" / (frame.stem + ".png")
    if damage == "missing_label":
        label.unlink()
    elif damage == "wrong_size":
        cv2.imwrite(str(label), cv2.resize(cv2.imread(str(label)), (100, 80), interpolation=cv2.INTER_NEAREST))
    elif damage == "empty_split":
        for f in (val / "images").iterdir():
            f.unlink()
    else:
        frame.write_bytes(b"\x89PNG not really")
    res = subprocess.run([sys.executable, "-m", "fcn_perception", "eval", "--data", str(root), "--split", "val"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("eval val")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert {"missing_label": "no label for", "wrong_size": "is 100x80 but its frame", "empty_split": "is empty", "unreadable_frame": "cannot read image"}[
        damage
    ] in lines[0]


def test_eval_through_a_class_map_on_the_generic_layout(tmp_path, camvid):
    """The shipped model on CamVid val frames re-labelled under other names: the same figures as on
    the SegNet layout, reached through a class map."""
    root = _write_generic(tmp_path / "g", camvid, n_train=1, n_val=3)
    renamed = root / "class_dict.csv"
    rows = list(csv.reader(renamed.open()))
    rows[1:] = [[f"cls_{r[0].lower()}", *r[1:]] if r[0] != "void" else r for r in rows[1:]]
    with renamed.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    cmap = tmp_path / "map.yaml"
    cmap.write_text(yaml.safe_dump({f"cls_{c.lower()}": c for c in CAMVID_CLASSES}))
    out_generic, out_segnet = tmp_path / "g.json", tmp_path / "s.json"
    base = [sys.executable, "-m", "fcn_perception", "eval", "--split", "val", "--limit", "3", "--precision", "fp32"]
    for data, extra, out in ((root, ["--class-map", str(cmap)], out_generic), (camvid, [], out_segnet)):
        res = subprocess.run([*base, "--data", str(data), *extra, "--json", str(out)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
    g, s = (yaml.safe_load(p.read_text()) for p in (out_generic, out_segnet))
    assert set(g) >= {"miou", "per_class_iou", "pixel_accuracy", "frames"} and g["frames"] == 3
    assert g["layout"] == "generic" and s["layout"] == "segnet"
    # the generic frames went through JPEG, so allow a little difference
    assert abs(g["miou"] - s["miou"]) < 0.03 and g["miou"] > 0.5


def test_same_seed_same_first_batches(camvid):
    def first_batch(seed):
        ds = open_split(camvid, "train")
        ds.pairs = ds.pairs[:6]
        data = SegmentationDataset(
            [Source(ds, LabelReader(ds, CAMVID_CLASSES))], (0.5,) * 3, (0.25,) * 3, 120, train_transform(AugmentConfig(crop=(64, 64)), seed), 2
        )
        sampler = MixSampler(data.offsets, [1.0], length=6, seed=seed)
        loader = torch.utils.data.DataLoader(
            data, batch_size=2, sampler=sampler, num_workers=1, worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed)
        )
        return next(iter(loader))

    a, b, c = first_batch(3), first_batch(3), first_batch(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_mix_sampler_draws_by_share():
    offsets = np.array([0, 10, 1010])
    draws = np.array(list(MixSampler(offsets, [0.5, 0.5], length=4000, seed=0)))
    share_small = (draws < 10).mean()
    assert 0.45 < share_small < 0.55  # 10 frames drawn as often as 1000 because the shares say so
    assert set(np.unique(draws[draws < 10])) == set(range(10))


def test_fine_tune_onto_a_new_class(tmp_path, camvid):
    """A user's own labels with a class the shipped model lacks (white stripes painted on the road):
    the trunk and shared classes carry over, a new score head learns them, the loss falls."""
    import torch.nn.functional as F

    from fcn_perception.inference.model_store import default_model_path
    from fcn_perception.model.fcn import build_model, init_from_checkpoint, load_model
    from fcn_perception.training.metrics import confusion_matrix, scores

    root = _write_generic(tmp_path / "stripes", camvid, n_train=4, n_val=2, lane=True, lane_name=NEW)
    cfg = TrainConfig.from_dict(
        {
            "datasets": [{"path": str(root), "val_split": "val"}],
            "init": str(default_model_path()),
            "out": str(tmp_path / "run"),
            "model": {"classes": [*CAMVID_CLASSES, LANE, NEW], "input_size": [160, 120], "variant": "fcn4s"},  # the shipped model's
            "augment": {"crop": [120, 120], "scale": [0.9, 1.1], "color": 0.0, "blur_noise": 0.0},
            "iterations": 60,
            "eval_every": 60,
            "batch_size": 4,
            "patches_per_image": 2,
            "lr": 0.003,
            "warmup": 5,
            "workers": 0,
        }
    )
    start = build_model(cfg.model)
    assert "new: ['Stripe']" in init_from_checkpoint(start, cfg.init)
    best = train(cfg)
    model = load_model(best)
    assert model.cfg.classes[-1] == NEW
    ds = open_split(root, "train")
    data = SegmentationDataset([Source(ds, LabelReader(ds, model.cfg.classes))], model.cfg.mean, model.cfg.std, 120)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.stack([data[i][1] for i in range(len(data))])
    lane = torch.where(y == 12, y, torch.full_like(y, VOID_ID))  # the loss on the new class's pixels
    with torch.no_grad():
        before, after = (F.cross_entropy(m.eval()(x), lane, ignore_index=VOID_ID).item() for m in (start, model))
        pred = model(x).argmax(1)
    assert after < 0.5 * before, (before, after)
    res = scores(confusion_matrix(pred.numpy(), y.numpy(), 13), model.cfg.classes)
    assert res["per_class_iou"][NEW] > 0.3, res["per_class_iou"]
    assert res["per_class_iou"]["Road"] > 0.6  # the shared class kept what it knew


def test_the_documented_fine_tuning_recipe_is_a_valid_config():
    from pathlib import Path

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "finetune_example.yaml").read_text())
    cfg = TrainConfig.from_dict(raw)
    assert cfg.model.classes[:11] == list(CAMVID_CLASSES) and cfg.model.classes[11] == LANE
    assert (Path(__file__).resolve().parents[1] / cfg.init).is_file()  # it starts from the shipped model
