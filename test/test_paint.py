"""Lane paint in the image: the model's too-wide LaneMarking thinned to the bright stroke, the same
on the host (OpenCV) and on a device (torch max-pooling)."""

from __future__ import annotations

import numpy as np
import pytest

from fcn_perception.inference.paint import sharpen_lanes

ROAD, LANE, CAR = 3, 11, 8


def test_the_models_wide_paint_becomes_the_thin_bright_stroke_and_nothing_else_changes():
    rgb = np.full((360, 480, 3), 90, np.uint8)
    rgb[:, 200:204] = 220  # the paint, 4 px
    rgb[:, 400:404] = 220  # a bright stroke the model did not call paint
    mask = np.full((360, 480), ROAD, np.uint8)
    mask[:, 194:212] = LANE  # the model's paint, 18 px wide
    mask[300:, 190:215] = CAR  # a car over it
    out = sharpen_lanes(mask, rgb, ROAD, LANE)
    assert (out[:300, 200:204] == LANE).all()
    assert (out[:300, 194:200] == ROAD).all() and (out[:300, 204:212] == ROAD).all()
    assert (out[300:, 190:215] == CAR).all()  # other classes untouched
    assert (out[:, 400:404] == ROAD).all()  # not the model's paint: not paint
    assert (sharpen_lanes(np.full_like(mask, ROAD), rgb, ROAD, LANE) == ROAD).all()


def test_on_a_device_it_is_the_same_as_on_the_host(camvid):
    torch = pytest.importorskip("torch")
    from fcn_perception.inference.frames import read_rgb
    from fcn_perception.inference.paint import sharpen_lanes_torch
    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.inference.segmenter import Segmenter, SegmenterConfig
    from fcn_perception.training.datasets import open_split

    seg = Segmenter(SegmenterConfig(threads=2, sharpen_lanes=False))
    changed = 0
    for f, _ in open_split(camvid, "val").pairs[::30]:
        rgb = read_rgb(f)
        mask = seg.segment(rgb).mask
        host = sharpen_lanes(mask, rgb, ROAD, LANE)
        x = torch.from_numpy(preprocess_rgb(rgb, (rgb.shape[1], rgb.shape[0]), seg._mean, seg._std))
        device = sharpen_lanes_torch(torch.from_numpy(mask), x, seg._mean, seg._std, ROAD, LANE).numpy()
        assert np.mean(host == device) >= 0.9999
        changed += int((host != mask).sum())
    assert changed > 0  # real frames have paint to thin
