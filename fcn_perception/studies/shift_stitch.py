"""Shift-and-stitch: dense output from the stride-32 net, the paper's alternative to learned upsampling.

Two routes to the same numbers:

* :func:`shift_and_stitch` runs the coarse net on ``f x f`` shifted copies of the input and
  interlaces the coarse score maps (``f**2`` forward passes).
* :func:`dilated` is the paper's efficient equivalent ("filter rarefaction"): the last ``log2 f``
  stride-2 layers get stride 1 and every later filter is dilated by the removed factor — one pass.

With zero padding the two differ only through what enters at the image border; with circular
padding (:func:`use_circular_padding`) they are identical, which is how the tests prove the
equivalence exactly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from fcn_perception.model.backbones import EfficientNetLite
from fcn_perception.model.fcn import FCN, Upsample


def coarse_scores(model: FCN, x: torch.Tensor) -> torch.Tensor:
    """Stride-32 class scores alone (the FCN-32s path of any FCN variant)."""
    return model.score["32"](model.backbone(x)[32])


def _shift(x: torch.Tensor, dy: int, dx: int, circular: bool) -> torch.Tensor:
    """Move content up/left by (dy, dx): output pixel (i, j) shows input pixel (i + dy, j + dx)."""
    if circular:
        return torch.roll(x, shifts=(-dy, -dx), dims=(-2, -1))
    shifted = torch.zeros_like(x)
    shifted[..., : x.shape[-2] - dy, : x.shape[-1] - dx] = x[..., dy:, dx:]
    return shifted


@torch.no_grad()
def shift_and_stitch(model: FCN, x: torch.Tensor, factor: int, circular: bool = False) -> torch.Tensor:
    """Scores at stride ``32 / factor`` by interlacing ``factor**2`` coarse passes over shifted inputs."""
    if factor < 1 or 32 % factor:
        raise ValueError(f"factor must divide 32, got {factor}")
    step = 32 // factor
    h, w = x.shape[-2:]
    out_h, out_w = math.ceil(h / step), math.ceil(w / step)
    dense = None
    for dy in range(factor):
        for dx in range(factor):
            coarse = coarse_scores(model, _shift(x, dy * step, dx * step, circular))
            if dense is None:
                dense = coarse.new_zeros(coarse.shape[0], coarse.shape[1], out_h, out_w)
            rows = len(range(dy, out_h, factor))
            cols = len(range(dx, out_w, factor))
            dense[..., dy::factor, dx::factor] = coarse[..., :rows, :cols]
    return dense


def dilated(model: FCN, factor: int) -> FCN:
    """A copy of ``model`` whose stride-32 path outputs stride ``32 / factor`` in a single pass."""
    if factor < 1 or 32 % factor or factor & (factor - 1):
        raise ValueError(f"factor must be a power of two dividing 32, got {factor}")
    if not isinstance(model.backbone, EfficientNetLite):
        raise NotImplementedError("filter rarefaction is implemented for the EfficientNet-Lite backbones; use shift_and_stitch for vgg16")
    net = copy.deepcopy(model).eval()
    convs = [m for m in net.backbone.modules() if isinstance(m, nn.Conv2d)]
    strided = [i for i, m in enumerate(convs) if m.stride[0] == 2]
    remove = int(math.log2(factor))
    first = strided[len(strided) - remove] if remove else len(convs)
    dilation = 1
    for conv in convs[first:]:
        # a layer after a removed stride sees its input upsampled by `dilation`: rarefy its filter
        if conv.kernel_size[0] > 1:
            _set_dilation(conv, dilation)
        if conv.stride[0] == 2:
            conv.stride = (1, 1)
            dilation *= 2
    return net


def _set_dilation(conv: nn.Conv2d, dilation: int) -> None:
    k = conv.kernel_size[0]
    conv.dilation = (dilation, dilation)
    conv.padding = (dilation * (k // 2),) * 2
    conv._reversed_padding_repeated_twice = [p for p in reversed(conv.padding) for _ in range(2)]


def use_circular_padding(model: nn.Module) -> nn.Module:
    """Switch every padded conv to circular padding (in place): removes border effects for the proof."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.padding[0] > 0:
            m.padding_mode = "circular"
            m._reversed_padding_repeated_twice = [p for p in reversed(m.padding) for _ in range(2)]
    return model


@torch.no_grad()
def dense_predict(model: FCN, x: torch.Tensor, factor: int, method: str = "dilated") -> torch.Tensor:
    """Full-resolution logits from the stride-32 path: densified ``factor``x, then bilinear to pixels."""
    if method == "dilated":
        scores = coarse_scores(dilated(model, factor), x)
    elif method == "shift_stitch":
        scores = shift_and_stitch(model, x, factor)
    else:
        raise ValueError(f"method must be dilated or shift_stitch, got {method!r}")
    return upsample_to(scores, x, 32 // factor)


def upsample_to(scores: torch.Tensor, x: torch.Tensor, step: int) -> torch.Tensor:
    """Scores at stride ``step`` -> logits at the input's size, by the fixed bilinear kernel FCN starts from."""
    if step == 1:
        return scores[..., : x.shape[-2], : x.shape[-1]]
    up = Upsample(scores.shape[1], step, depthwise=True).to(scores.device)
    return up(scores, x.shape[-2:])
