"""The final upsampling, argmax and confidence on the host (``inference/stencil_head.py``): against the
transposed convolution and the graph's head computed in full, on synthetic scores and the shipped
model's own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcn_perception.inference.stencil_head import StencilHead
from fcn_perception.model.fcn import class_and_confidence


def in_full(scores: np.ndarray, kernel: np.ndarray, factor: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """What the exported graph computes: the transposed convolution, cropped, then its head."""
    k = torch.from_numpy(np.ascontiguousarray(kernel))[:, None]
    logits = F.conv_transpose2d(torch.from_numpy(scores)[None], k, stride=factor, padding=factor - 1, output_padding=factor - 1, groups=len(kernel))
    ids, confidence = class_and_confidence(logits[:, :, : size[1], : size[0]])
    return ids[0].numpy().astype(np.uint8), confidence[0].numpy()


def smooth_scores(rng, classes: int, h: int, w: int) -> np.ndarray:
    """Class regions a few cells wide, as a network's score map has, not noise."""
    coarse = rng.normal(0, 4, (classes, h // 4 + 2, w // 4 + 2)).astype(np.float32)
    return F.interpolate(torch.from_numpy(coarse)[None], size=(h, w), mode="bilinear")[0].numpy()


@pytest.mark.parametrize(("factor", "size"), [(2, (37, 21)), (4, (160, 120)), (4, (157, 118)), (8, (100, 60))])
def test_with_one_kernel_for_every_class_the_masks_are_exact(factor, size):
    """Where a block's cells share their top class that is exact for one positive kernel, so any
    difference is a block computed wrong; the confidence is exact on the score map's grid."""
    rng = np.random.default_rng(factor)
    h, w = -(-size[1] // factor), -(-size[0] // factor)
    scores = smooth_scores(rng, 5, h, w)
    kernel = np.repeat(rng.uniform(0.2, 1.0, (1, 2 * factor - 1, 2 * factor - 1)).astype(np.float32), 5, 0)
    mask, confidence = StencilHead(kernel, factor)(scores, size)
    want_mask, want_confidence = in_full(scores, kernel, factor, size)
    assert mask.shape == confidence.shape == (size[1], size[0]) and mask.flags.c_contiguous
    assert np.array_equal(mask, want_mask)
    grid = np.abs(confidence[::factor, ::factor].astype(int) - want_confidence[::factor, ::factor])
    assert grid.max() <= 1  # float rounding only
    assert len(np.unique(mask)) > 2  # regions and their borders, not one class


def test_the_blocks_in_doubt_are_computed_in_full():
    """Per-class kernels and noise: nearly every block is in doubt, so nearly every pixel must match."""
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 3, (6, 20, 30)).astype(np.float32)
    kernel = rng.uniform(0.5, 1.5, (6, 7, 7)).astype(np.float32)
    mask, confidence = StencilHead(kernel, 4)(scores, (118, 79))
    want_mask, want_confidence = in_full(scores, kernel, 4, (118, 79))
    assert np.mean(mask == want_mask) > 0.999
    assert np.mean(np.abs(confidence.astype(int) - want_confidence) <= 1) > 0.99  # the few blocks not in doubt: bilinear


def test_on_the_shipped_model_it_is_the_graph_on_nearly_every_pixel(camvid):
    from fcn_perception.inference.frames import read_rgb
    from fcn_perception.inference.model_store import default_model_path
    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.model.fcn import load_model
    from fcn_perception.training.datasets import open_split

    model = load_model(default_model_path("pt")).eval()
    seen = {}
    model.up_final.register_forward_hook(lambda module, args, out: seen.update(scores=args[0][0].numpy()))
    kernel = model.up_final.deconv.weight[:, 0].detach().numpy()
    head = StencilHead(kernel, 4)
    for path, _ in open_split(camvid, "val").pairs[::50]:
        with torch.no_grad():
            model(torch.from_numpy(preprocess_rgb(read_rgb(path), (480, 360), model.cfg.mean, model.cfg.std)))
        mask, confidence = head(seen["scores"], (480, 360))
        want_mask, want_confidence = in_full(seen["scores"], kernel, 4, (480, 360))
        assert np.mean(mask == want_mask) > 0.9995
        error = np.abs(confidence.astype(int) - want_confidence)
        assert error[::4, ::4].max() <= 1 and error.mean() < 2.5
