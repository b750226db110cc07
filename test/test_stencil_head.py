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


def test_onnx_runtime_runs_the_graph_up_to_the_scores_and_the_head_does_the_rest(camvid):
    """The shipped INT8 graph cut where its final upsampling starts: the session's one output is the
    scores at 1/4, and the masks are the whole graph's on nearly every pixel, at sizes that are not
    a multiple of 4 too."""
    import cv2

    from fcn_perception.inference.frames import read_rgb
    from fcn_perception.inference.model_store import default_model_path
    from fcn_perception.inference.onnxruntime_backend import OnnxRuntimeBackend
    from fcn_perception.inference.preprocess import preprocess_rgb
    from fcn_perception.training.datasets import open_split

    frames = [read_rgb(f) for f, _ in open_split(camvid, "val").pairs[::40]]
    cut = OnnxRuntimeBackend(default_model_path("int8"), 2)
    whole = OnnxRuntimeBackend(default_model_path("int8"), 2, stencil_head=False)
    assert {"mask", "confidence"} <= {o.name for o in whole.session.get_outputs()}
    (out,) = cut.session.get_outputs()
    assert out.shape[1] == 12 and out.name != "logits"
    for size in [(480, 360), (355, 233)]:
        x = np.concatenate([preprocess_rgb(cv2.resize(rgb, size), size, cut.config.mean, cut.config.std) for rgb in frames[:3]])
        assert cut.session.run(None, {"image": x})[0].shape == (3, 12, -(-size[1] // 4), -(-size[0] // 4))
        a, b = cut.infer(x), whole.infer(x)
        assert a.mask.shape == a.confidence.shape == (3, size[1], size[0])
        assert np.mean(a.mask == b.mask) > 0.9995, np.mean(a.mask == b.mask)
        assert np.abs(a.confidence.astype(int) - b.confidence).mean() < 2.5


def test_only_the_fcns_final_upsampling_is_cut():
    """Anything else ends the graph as exported: a crop that does not start at 0 or that cuts the
    classes, a half-precision kernel, another stride, a kernel shared across classes."""
    import onnx

    from fcn_perception.inference.model_store import default_model_path
    from fcn_perception.inference.onnxruntime_backend import _final_upsampling
    from fcn_perception.model.fcn import load_model

    proto = onnx.load(str(default_model_path("onnx")))
    name, head = _final_upsampling(proto)
    kernel = load_model(default_model_path("pt")).up_final.deconv.weight[:, 0].detach().numpy()
    assert head.factor == 4 and np.allclose(head.centre.ravel(), kernel[:, 3, 3])
    deconv = next(n for n in proto.graph.node if n.op_type == "ConvTranspose" and n.input[0] == name)

    def attribute(node, key):
        return next(a for a in node.attribute if a.name == key)

    changed = onnx.ModelProto()
    changed.CopyFrom(proto)
    crop = next(n for n in changed.graph.node if n.output[0] == "logits")
    start = next(n for n in changed.graph.node if n.output[0] == crop.input[1])
    start.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array([1], np.int64)))
    assert _final_upsampling(changed) is None
    changed.CopyFrom(proto)  # a crop of the classes, not of the rows or columns
    crop = next(n for n in changed.graph.node if n.output[0] == "logits")
    axes = next(n for n in changed.graph.node if n.output[0] == crop.input[3])
    axes.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array([1], np.int64)))
    assert _final_upsampling(changed) is None
    changed.CopyFrom(proto)  # a half-precision graph: its scores are not the float32 the cut declares
    weight = next(t for t in changed.graph.initializer if t.name == deconv.input[1])
    weight.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(weight).astype(np.float16), weight.name))
    assert _final_upsampling(changed) is None
    for key, value in (("strides", [2, 2]), ("group", 1)):
        changed.CopyFrom(proto)
        node = next(n for n in changed.graph.node if n.name == deconv.name)
        a = attribute(node, key)
        if key == "group":
            a.i = value
        else:
            del a.ints[:]
            a.ints.extend(value)
        assert _final_upsampling(changed) is None, key
