"""Partial labels: a class map entry naming several classes ("Road: [Road, LaneMarking]")."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcn_perception.model.classes import CAMVID_CLASSES, VOID_ID
from fcn_perception.training.datasets import DatasetError, LabelReader, id_lut, load_class_map, open_split
from fcn_perception.training.label_space import LabelSpace
from fcn_perception.training.metrics import confusion_matrix, scores
from fcn_perception.training.train import partial_cross_entropy

LANES = [*CAMVID_CLASSES, "LaneMarking"]
ROAD, LANE, SKY = CAMVID_CLASSES.index("Road"), 11, CAMVID_CLASSES.index("Sky")


def test_partial_loss_takes_the_summed_probability_of_the_set():
    space = LabelSpace(["a", "b", "c"])
    ab = space.target_id(["a", "b"])
    assert ab == 3 and space.membership().tolist()[3] == [True, True, False]
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0], [2.0, 1.0, 1.0]]).T.reshape(1, 3, 1, 3)
    target = torch.tensor([[[ab, 2, VOID_ID]]])
    p = torch.softmax(logits[0, :, 0, :], 0)
    # pixel 0: -log(p_a + p_b); pixel 1: -log(p_c); pixel 2 void
    by_hand = (-math.log(p[0, 0] + p[1, 0]) - math.log(p[2, 1])) / 2
    got = partial_cross_entropy(logits, target, torch.from_numpy(space.membership()))
    assert float(got) == pytest.approx(by_hand, rel=1e-6)
    # weighted: a set pixel weighs as its first member (a), the mean is normalised by the weights
    w = torch.tensor([2.0, 5.0, 3.0])
    by_hand_w = (2.0 * -math.log(p[0, 0] + p[1, 0]) + 3.0 * -math.log(p[2, 1])) / (2.0 + 3.0)
    got_w = partial_cross_entropy(logits, target, torch.from_numpy(space.membership()), w)
    assert float(got_w) == pytest.approx(by_hand_w, rel=1e-6)


def test_without_sets_it_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0, :3] = VOID_ID
    w = torch.rand(4) + 0.5
    members = torch.from_numpy(LabelSpace("abcd").membership())
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=VOID_ID)
    torch.testing.assert_close(partial_cross_entropy(logits, target, members, w), ref)
    # a set table present but a batch without set pixels gives the same number through the set path
    space = LabelSpace("abcd")
    space.target_id(["a", "b"])
    torch.testing.assert_close(partial_cross_entropy(logits, target, torch.from_numpy(space.membership()), w), ref)


def test_eval_counts_any_listed_class_as_correct_scored_as_the_first():
    space = LabelSpace(LANES)
    road_or_lane = space.target_id(["Road", "LaneMarking"])
    target = np.array([road_or_lane, road_or_lane, road_or_lane, SKY, VOID_ID])
    pred = np.array([ROAD, LANE, SKY, LANE, ROAD])
    p, t = space.resolve(pred, target)
    assert t.tolist() == [ROAD, ROAD, ROAD, SKY, VOID_ID]
    assert p.tolist() == [ROAD, ROAD, SKY, LANE, ROAD]  # a lane on a road label is a road hit; elsewhere an error
    conf = confusion_matrix(p, t, len(LANES))
    lut = id_lut(list(CAMVID_CLASSES), LANES, {c: ([c, "LaneMarking"] if c == "Road" else c) for c in CAMVID_CLASSES}, space)
    res = scores(conf, LANES, space.scored_classes(lut))
    # Road: 2 hits of 3 road pixels, no false positive -> 2/3; Sky: 1 pixel, predicted Lane, plus a
    # false Sky -> 0; LaneMarking is not labelled by this data: not scored, not in the mean
    assert res["per_class_iou"]["Road"] == pytest.approx(2 / 3)
    assert res["per_class_iou"]["Sky"] == 0.0
    assert res["per_class_iou"]["LaneMarking"] is None
    assert res["miou"] == pytest.approx(1 / 3)


def test_class_map_lists_and_their_errors(tmp_path, camvid):
    good = tmp_path / "map.yaml"
    good.write_text("".join(f"{c}: {'[Road, LaneMarking]' if c == 'Road' else c}\n" for c in CAMVID_CLASSES))
    ds = open_split(camvid, "val")
    reader = LabelReader(ds, LANES, load_class_map(good))
    lab = reader(ds.pairs[0][1])
    assert set(np.unique(lab).tolist()) <= set(range(11)) - {ROAD} | {12, VOID_ID}
    assert (lab == 12).mean() > 0.2  # CamVid's road: "Road or LaneMarking"
    assert reader.scored == list(range(11))
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("[Road, LaneMarking]", "[Road, Lane]"))
    with pytest.raises(DatasetError, match=r"\['Lane'\] are not model classes; use one of .*LaneMarking"):
        LabelReader(ds, LANES, load_class_map(bad))
    empty = tmp_path / "empty.yaml"
    empty.write_text(good.read_text().replace("[Road, LaneMarking]", "[]"))
    with pytest.raises(DatasetError, match="a list of them"):
        load_class_map(empty)


def test_shipped_lane_class_maps_cover_their_data():
    repo = Path(__file__).resolve().parents[1]
    data = repo.parent / "shared" / "data"
    for folder, name in (("camvid", "camvid_to_lanes"), ("cityscapes", "cityscapes_to_lanes"), ("camvid_lanes", "camvid32_to_lanes")):
        reader = LabelReader(open_split(data / folder, "train"), LANES, load_class_map(repo / "config" / "class_maps" / f"{name}.yaml"))
        assert reader.scored == (list(range(12)) if folder == "camvid_lanes" else list(range(11)))


def test_pseudo_lane_labels_take_only_the_sure_pixels_of_the_partial_road():
    """A 4 px bright line on asphalt that a teacher draws 16 px wide, a second line the teacher missed,
    a wide bright patch, and a car over the first line: only the first line becomes LaneMarking, flat
    asphalt (and the patch: no thin stroke) Road, the car stays a car, the missed line stays partial."""
    from fcn_perception.training.pseudo_lanes import PseudoLaneRule

    space = LabelSpace(LANES)
    partial = space.target_id(["Road", "LaneMarking"])
    rule = PseudoLaneRule(partial, ROAD, LANE)
    rgb = np.full((360, 480, 3), 80, np.uint8)
    rgb[:, 238:242] = 210  # the line
    rgb[40:120, 40:160] = 200  # a wide bright patch: no thin stroke
    rgb[150:, 100:104] = 210  # a line the teacher missed
    label = np.full((360, 480), partial, np.uint8)
    car = CAMVID_CLASSES.index("Car")
    label[300:, 200:280] = car
    teacher = np.full((360, 480), ROAD, np.uint8)
    teacher[:, 232:248] = LANE
    out = rule.relabel(rgb, label, rule.teacher_area(teacher))
    assert (out[:300, 238:242] == LANE).all()
    assert not (out[:, :200] == LANE).any() and not (out[:, 280:] == LANE).any()
    assert (out[200:300, 300:] == ROAD).all() and (out[200:300, :30] == ROAD).all()
    assert (out[300:, 200:280] == car).all()
    assert (out[50:110, 50:150] == ROAD).all()
    assert (out[150:, 100:104] == partial).all()  # paint-like, but not the teacher's: not sure either way
    assert rule.relabel(rgb, np.full_like(label, car), rule.teacher_area(teacher)).max() == car  # nothing partial: unchanged


def test_eval_without_a_class_map_says_how_to_score_road_that_includes_the_paint(camvid, capsys):
    """CamVid's SegNet Road includes the paint: scored as plain Road, the model's LaneMarking there
    counts against it (Road 89 instead of 96 on val), so eval says which class map makes it partial."""
    from fcn_perception.tools.cli import main as cli

    args = ["eval", "--data", str(camvid), "--split", "val", "--limit", "2"]
    assert cli(args) == 0
    assert "camvid_to_lanes.yaml" in capsys.readouterr().out
    assert cli([*args, "--class-map", "config/class_maps/camvid_to_lanes.yaml"]) == 0
    assert "camvid_to_lanes.yaml" not in capsys.readouterr().out
