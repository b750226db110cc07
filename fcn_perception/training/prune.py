"""A trained FCN made cheaper: the trunk's expanded channels pruned, then the pruned network
distilled back toward the original (no labels: the original is the teacher). ``tools/prune_model.py``
runs it; MODEL.md ("a pruned trunk") has what it made of the shipped model, not shipped.

Most of the network's time on a CPU is in the inverted-residual blocks' expanded channels (their
1x1 expand, depthwise and 1x1 project convolutions: BENCHMARKS.md, 2026-12-06, eighth sitting).
Per block, in order, the channels that carry least of the projection's output over real frames are
dropped (``||W_p[:, c]||^2 E[h_c^2]``; widths kept in multiples of 16 for the CPU kernels), and the
projection is refitted by least squares so the pruned block's output matches the original's on the
same frames, with an intercept folded into its BatchNorm (He et al., "Channel Pruning for
Accelerating Very Deep Neural Networks", 2017, without the LASSO). Then every weight is trained
toward the original's class distribution (the KL divergence of the logits: Hinton et al.'s
distillation at T = 1) on crops of real frames, with the BatchNorm statistics frozen: a batch of 8
on a CPU would only add noise to them. With ``--balance`` each pixel counts by the median-frequency
weight of the class the teacher gives it, as the training recipe weighs its labels.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fcn_perception.inference.frames import read_rgb
from fcn_perception.inference.preprocess import preprocess_rgb
from fcn_perception.model.config import ModelConfig
from fcn_perception.model.fcn import FCN
from fcn_perception.training.datasets import class_frequencies, class_weights

CROP = 352


def frame_files(data: Path, holdout: int = 150) -> list[tuple[Path, float]]:
    """(frame, width stretch) under ``data`` (``../shared/data``): CamVid train, and Cityscapes
    train without its last ``holdout`` frames (the selection slice), stretched back to 2:1 as the
    copy squashed them."""
    camvid = sorted((data / "camvid" / "train").glob("*.png"))
    cityscapes = sorted((data / "cityscapes" / "train" / "images").glob("*.jpg"))
    cityscapes = cityscapes[: len(cityscapes) - holdout]
    if not camvid or not cityscapes:
        raise ValueError(f"{data}: needs camvid/train/*.png and cityscapes/train/images/*.jpg (found {len(camvid)} and {len(cityscapes)})")
    return [(f, 1.0) for f in camvid] + [(f, 2.0) for f in cityscapes]


def read_frame(path: Path, stretch: float, cfg: ModelConfig, scale: float = 1.0) -> np.ndarray:
    """(3, h, w) normalised float32 at the model's height times ``scale``, the frame's own aspect
    (``stretch`` undoes a copy's squash), prepared as the node prepares frames."""
    rgb = read_rgb(path)
    h, w = rgb.shape[:2]
    s = cfg.input_size[1] / h * scale
    return preprocess_rgb(rgb, (round(w * stretch * s), round(h * s)), cfg.mean, cfg.std)[0]


def parse_ratios(spec: str) -> dict[int, float]:
    """``1-5:0.25,6-15:0.125`` -> {block: share of its expanded channels to drop}."""
    ratios = {}
    try:
        for part in spec.split(","):
            blocks, _, ratio = part.partition(":")
            first, _, last = blocks.partition("-")
            for i in range(int(first), int(last or first) + 1):
                ratios[i] = float(ratio)
    except ValueError:
        raise ValueError(f"--prune wants BLOCKS:SHARE,... (e.g. 1-5:0.25,6-15:0.125), got {spec!r}") from None
    if not all(0.0 <= r < 1.0 for r in ratios.values()):
        raise ValueError(f"--prune: a share is from 0 to below 1, got {spec!r}")
    return ratios


def _project_io(net: FCN, block: int, frames: list[torch.Tensor], samples: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's projection input (hidden) and pre-BatchNorm output at ``samples`` random
    positions a frame, as (channels, positions) float64."""
    got = {}
    hook = net.backbone.blocks[block].project.register_forward_hook(lambda m, i, o: got.update(h=i[0], y=o))
    gen = torch.Generator().manual_seed(block)
    hs, ys = [], []
    with torch.no_grad():
        for x in frames:
            net(x[None])
            h, y = got["h"].flatten(2)[0], got["y"].flatten(2)[0]
            pick = torch.randperm(h.shape[1], generator=gen)[:samples]
            hs.append(h[:, pick])
            ys.append(y[:, pick])
    hook.remove()
    return torch.cat(hs, 1).double(), torch.cat(ys, 1).double()


def _narrow_bn(bn: nn.BatchNorm2d, keep: torch.Tensor) -> nn.BatchNorm2d:
    out = nn.BatchNorm2d(len(keep), eps=bn.eps, momentum=bn.momentum)
    out.load_state_dict({k: v[keep] if v.ndim else v for k, v in bn.state_dict().items()})
    return out.train(bn.training)  # a new module trains: its statistics would follow every frame


def prune_block(net: FCN, original: FCN, block: int, ratio: float, frames: list[torch.Tensor]) -> int:
    """Drop ``ratio`` of the block's expanded channels in place and refit its projection; returns
    the width kept."""
    b = net.backbone.blocks[block]
    w = b.project.weight.detach()[:, :, 0, 0].double()  # (out, hidden)
    keep_n = max(16, round(w.shape[1] * (1 - ratio) / 16) * 16)
    if keep_n >= w.shape[1]:
        return w.shape[1]
    h, _ = _project_io(net, block, frames)  # what the pruned network so far gives this block
    _, target = _project_io(original, block, frames)  # what the original's block put out
    importance = (w**2).sum(0) * (h**2).mean(1)
    keep = torch.sort(torch.argsort(importance, descending=True)[:keep_n]).values
    a = torch.cat([h[keep], torch.ones(1, h.shape[1], dtype=h.dtype)])  # with an intercept
    gram = a @ a.T
    fit = torch.linalg.solve(gram + 1e-3 * gram.diagonal().mean() * torch.eye(len(a), dtype=a.dtype), a @ target.T).T
    with torch.no_grad():
        b.expand.weight.data = b.expand.weight.data[keep].clone()
        b.bn_expand = _narrow_bn(b.bn_expand, keep)
        b.dw.weight.data = b.dw.weight.data[keep].clone()
        b.dw.groups = b.dw.in_channels = b.dw.out_channels = keep_n
        b.bn_dw = _narrow_bn(b.bn_dw, keep)
        b.project.weight.data = fit[:, :-1, None, None].float().contiguous()
        b.project.in_channels = b.expand.out_channels = keep_n
        b.bn_project.running_mean -= fit[:, -1].float()  # BN(Wh + c) = BN'(Wh)
    return keep_n


def calibration_frames(files: list[tuple[Path, float]], cfg: ModelConfig, frames: int = 48, seed: int = 0) -> list[torch.Tensor]:
    """Half CamVid, half Cityscapes frames, drawn from ``files`` (:func:`frame_files`), at the
    model's height: what the refits are fitted on."""
    rng = random.Random(seed)
    camvid, cityscapes = _by_source(files)
    picked = rng.sample(camvid, frames // 2) + rng.sample(cityscapes, frames // 2)
    return [torch.from_numpy(read_frame(f, s, cfg)) for f, s in picked]


def _by_source(files: list[tuple[Path, float]]) -> list[list[tuple[Path, float]]]:
    """``files`` (:func:`frame_files`) split by source, CamVid's first: a source is told by its
    width stretch."""
    return [[f for f in files if f[1] == stretch] for stretch in sorted({s for _, s in files})]


def teacher_class_weights(teacher: FCN, frames: list[torch.Tensor], power: float) -> torch.Tensor:
    """Median-frequency class weights (the training recipe's correction for class imbalance,
    :func:`~fcn_perception.training.datasets.class_weights`) of the classes ``teacher`` gives
    ``frames``, to the ``power``: distilled at every pixel alike, the thin classes (pole, fence,
    sign), a few pixels a frame, were what the pruned trunks lost."""
    with torch.no_grad():
        ids = [teacher(f[None]).argmax(1)[0].numpy().astype(np.uint8) for f in frames]
    w = class_weights(*class_frequencies(ids, len(teacher.cfg.classes)), "median_freq")
    return torch.tensor(w**power, dtype=torch.float32)


def prune(original: FCN, ratios: dict[int, float], frames: list[torch.Tensor]) -> FCN:
    """A copy of ``original`` with its blocks pruned one after another (``ratios``: block -> share
    of its expanded channels to drop), each refitted on what the blocks pruned before it now give
    on ``frames``."""
    net = copy.deepcopy(original).eval()
    for block in sorted(ratios):
        if net.backbone.blocks[block].expand is not None and ratios[block] > 0:
            kept = prune_block(net, original, block, ratios[block], frames)
            print(f"block {block}: {kept} of {original.backbone.blocks[block].dw.out_channels} channels kept", flush=True)
    hidden = tuple(b.dw.out_channels for b in net.backbone.blocks)
    pruned = FCN(ModelConfig(**{**original.cfg.__dict__, "hidden": hidden}))
    pruned.load_state_dict(net.state_dict())
    return pruned.eval()


def _crop(sources: list[list[tuple[Path, float]]], cfg: ModelConfig, rng: random.Random) -> np.ndarray:
    """A random crop of a frame of a random source (:func:`_by_source`): CamVid's 367 frames as
    often as Cityscapes' 2,825 (drawn from all frames alike, 88 % were Cityscapes', and CamVid's thin
    classes did not come back)."""
    path, stretch = rng.choice(rng.choice(sources))
    x = read_frame(path, stretch, cfg, rng.uniform(0.75, 1.5))
    if x.shape[1] < CROP or x.shape[2] < CROP:
        x = cv2.resize(x.transpose(1, 2, 0), (max(CROP, x.shape[2]), max(CROP, x.shape[1]))).transpose(2, 0, 1)
    top, left = rng.randint(0, x.shape[1] - CROP), rng.randint(0, x.shape[2] - CROP)
    x = x[:, top : top + CROP, left : left + CROP]
    return np.ascontiguousarray(x[:, :, ::-1] if rng.random() < 0.5 else x)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) of the class distributions per pixel, averaged over the pixels, each
    weighted by ``weights`` of the class the teacher gives it (none: alike). Logits (N, C, H, W)."""
    kl = F.kl_div(F.log_softmax(student, 1), F.log_softmax(teacher, 1), log_target=True, reduction="none").sum(1)
    if weights is None:
        return kl.mean()
    w = weights[teacher.argmax(1)]
    return (kl * w).sum() / w.sum()


def distil(
    student: FCN,
    teacher: FCN,
    files: list[tuple[Path, float]],
    minutes: float,
    lr: float = 2e-4,
    batch: int = 8,
    seed: int = 0,
    save: Callable[[int], None] | None = None,
    save_minutes: float = 10.0,
    weights: torch.Tensor | None = None,
) -> int:
    """Train ``student`` toward ``teacher``'s class distribution for ``minutes`` (cosine-decayed
    AdamW); returns the steps taken. ``save(steps)`` is called every ``save_minutes``: a run of
    hours that is stopped keeps what it learned. ``weights``: per class, what a pixel the teacher
    gives that class counts in the loss (:func:`teacher_class_weights`); none: every pixel alike."""
    rng, sources = random.Random(seed), _by_source(files)
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    student.eval()  # BatchNorm statistics frozen
    start, budget, step, losses = time.monotonic(), minutes * 60, 0, []
    saved_at = start
    while (elapsed := time.monotonic() - start) < budget:
        x = torch.from_numpy(np.stack([_crop(sources, teacher.cfg, rng) for _ in range(batch)]))
        with torch.no_grad():
            target = teacher(x)
        loss = distillation_loss(student(x), target, weights)
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step, losses = step + 1, [*losses[-49:], loss.item()]
        if step % 50 == 0:
            print(f"step {step} ({elapsed / 60:.1f} min): KL {np.mean(losses):.4f}", flush=True)
        if save is not None and time.monotonic() - saved_at >= save_minutes * 60:
            save(step)
            saved_at = time.monotonic()
    return step
