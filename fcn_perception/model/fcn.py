"""Fully convolutional network with skip connections (Long, Shelhamer & Darrell): FCN-32s/16s/8s, and 4s."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from fcn_perception.model.backbones import build_backbone
from fcn_perception.model.config import VARIANTS, ModelConfig


def bilinear_kernel(channels: int, factor: int) -> torch.Tensor:
    """Triangle (bilinear) kernel of odd size ``2*factor - 1`` for a transposed convolution.

    Odd, centred kernels put input cell ``i`` exactly on output pixel ``factor * i``, matching the
    backbones' sampling grid, so upsampled maps need no crop offset and stay aligned with the image.
    Weights are depthwise (channel c only feeds channel c), as in the paper's initialisation.
    """
    size = 2 * factor - 1
    ramp = 1.0 - torch.abs(torch.arange(size, dtype=torch.float32) - (factor - 1)) / factor
    kernel = ramp[:, None] * ramp[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


class Upsample(nn.Module):
    """Learnable in-network upsampling: a transposed convolution initialised to bilinear interpolation."""

    def __init__(self, channels: int, factor: int, depthwise: bool = False) -> None:
        super().__init__()
        self.factor = factor
        groups = channels if depthwise else 1
        self.deconv = nn.ConvTranspose2d(
            channels,
            channels,
            2 * factor - 1,
            stride=factor,
            padding=factor - 1,
            output_padding=factor - 1,
            groups=groups,
            bias=False,
        )
        weight = bilinear_kernel(channels, factor)
        if depthwise:  # (C, 1, k, k): each channel's own triangle kernel
            weight = weight[range(channels), range(channels)][:, None]
        with torch.no_grad():
            self.deconv.weight.copy_(weight)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        # factor * n >= size always holds (n = ceil(size / factor)): crop the bottom/right excess.
        return self.deconv(x)[:, :, : size[0], : size[1]]


class FCN(nn.Module):
    """Backbone + 1x1 class scores at strides 32/16/8 (and 4), fused by summation after learned upsampling.

    Any input size works: feature maps are ``ceil(size / stride)`` and every upsampling is cropped
    to the finer map, so the logits come out exactly ``H x W`` and aligned with the input.
    """

    def __init__(self, cfg: ModelConfig, pretrained: str | Path | bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        n = cfg.num_classes
        self.backbone = build_backbone(cfg.backbone, pretrained, cfg.hidden)
        self.strides = VARIANTS[cfg.variant]
        ch = self.backbone.channels
        self.score = nn.ModuleDict({str(s): nn.Conv2d(ch[s], n, 1) for s in self.strides})
        # zero-init the skip scores so training starts from FCN-32s-like behaviour (the paper's trick)
        for s in self.strides[1:]:
            nn.init.zeros_(self.score[str(s)].weight)
            nn.init.zeros_(self.score[str(s)].bias)
        self.up2 = nn.ModuleList(Upsample(n, 2) for _ in self.strides[1:])
        self.up_final = Upsample(n, self.strides[-1], depthwise=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = self.backbone(x)
        out = self.score["32"](feats[32])
        for up, s in zip(self.up2, self.strides[1:], strict=True):
            skip = self.score[str(s)](feats[s])
            out = up(out, skip.shape[-2:]) + skip
        return self.up_final(out, size)


def build_model(cfg: ModelConfig, pretrained: str | Path | bool = False) -> FCN:
    return FCN(cfg, pretrained)


def save_checkpoint(path: str | Path, model: FCN, extra: dict | None = None) -> None:
    """Weights are stored as a plain state dict + config dict so loading never unpickles code."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"config": asdict(model.cfg), "state_dict": model.state_dict(), **(extra or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves half a checkpoint


def class_and_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel: the class id (float32, exact for small integers) and the confidence, the top class's
    softmax probability as uint8 (255 = 1.0) — what every exported graph and the PyTorch backend return.

    The id is ``logits.argmax(1)`` written as one running max (a strict ``>`` keeps the first of equal
    scores, as ArgMax does): OpenVINO ran ArgMax as a generic TopK that took a third of the network's
    time at 480x360, the running max a tenth of that (MODEL.md, "Speed"). The confidence reuses that
    max: ``1 / sum_c exp(l_c - max)``, again class by class, so runtimes fuse it into the same
    elementwise pass (0.1-0.5 ms at 480x360, where Softmax + ReduceMax over the class axis cost 1-2 ms).
    ``floor(255 p + 0.5)`` rounds the same on every runtime (a float-to-uint8 cast truncates in some,
    rounds in others).
    """
    best = logits[:, 0]
    ids = torch.zeros_like(best)
    for c in range(1, logits.shape[1]):
        score = logits[:, c]
        ids = torch.where(score > best, torch.full_like(best, float(c)), ids)
        best = torch.maximum(best, score)
    total = torch.exp(logits[:, 0] - best)
    for c in range(1, logits.shape[1]):
        total = total + torch.exp(logits[:, c] - best)
    return ids, torch.floor(255.0 / total + 0.5).to(torch.uint8)


def read_checkpoint(path: str | Path, map_location: str = "cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, checked (``weights_only=True``): for tools that
    want its extras (steps, selection scores) as well as the model, in one read of the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickled modules, corrupt files, foreign formats
        raise ValueError(f"{path}: not a loadable fcn_perception checkpoint ({exc.__class__.__name__}: {_reason(exc)})") from exc
    if not isinstance(payload, dict) or "config" not in payload or "state_dict" not in payload:
        raise ValueError(f"{path}: not an fcn_perception checkpoint (needs 'config' and 'state_dict')")
    return payload


def _reason(exc: Exception) -> str:
    """The first sentence of why torch refused a file. Its weights-only unpickler wraps the reason in
    advice to load with ``weights_only=False`` (which would run the file's code, and a checkpoint of
    ours never needs it): those lines are dropped."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    said = [ln for ln in lines if "weights_only" not in ln and not ln.startswith(("Weights only load failed", "Check the documentation"))]
    reason = (said or lines or [""])[0].removeprefix("WeightsUnpickler error:").strip()
    return reason.split(". ", 1)[0].rstrip(".")


def model_from(payload: dict) -> FCN:
    """The FCN a :func:`read_checkpoint` payload holds, in eval mode."""
    model = FCN(ModelConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


def load_model(path: str | Path, map_location: str = "cpu") -> FCN:
    """Rebuild an FCN from a checkpoint written by :func:`save_checkpoint`."""
    return model_from(read_checkpoint(path, map_location))


def init_from_checkpoint(model: FCN, path: str | Path) -> str:
    """Fine-tuning start: every weight of the checkpoint that fits, class by class for the score head.

    The trunk always carries over. Score and upsampling weights are indexed by class, so a class the
    old and new lists share keeps its learned scores, and a new class (say a lane marking from a user's
    labels) starts from the head's fresh initialisation. A finer variant grows from a coarser one (the
    paper's FCN-32s -> 16s -> 8s staging, and on to 4s): the shared skips carry over, the new skip's
    scores start at zero and the final upsampling, of another factor, at bilinear — so the first step
    predicts what the old network did, up to the final interpolation. Returns a one-line account.
    """
    old = load_model(path)
    old_idx = {name: i for i, name in enumerate(old.cfg.classes)}
    pairs = [(i, old_idx[name]) for i, name in enumerate(model.cfg.classes) if name in old_idx]
    if old.cfg.backbone != model.cfg.backbone or model.strides[: len(old.strides)] != old.strides:
        raise ValueError(f"{path}: a {old.cfg.backbone} {old.cfg.variant} cannot start a {model.cfg.backbone} {model.cfg.variant}")
    if old.cfg.hidden != model.cfg.hidden:
        raise ValueError(f"{path}: its trunk's block widths {list(old.cfg.hidden) or 'unpruned'} are not the model's {list(model.cfg.hidden) or 'unpruned'}")
    new_state, old_state = model.state_dict(), old.state_dict()
    if old.cfg.classes == model.cfg.classes and old.strides == model.strides:
        model.load_state_dict(old_state)
        return f"all weights, {len(pairs)} classes"
    if pairs:
        new_ids, old_ids = (torch.tensor(v) for v in zip(*pairs, strict=True))
    same_classes = old.cfg.classes == model.cfg.classes
    for key, value in new_state.items():
        src = old_state.get(key)
        if src is None or (key.startswith("up_final.") and src.shape != value.shape):
            continue  # a skip or an upsampling factor the old network did not have: its fresh init
        if same_classes or not key.startswith(("score.", "up2.", "up_final.")):
            if src.shape == value.shape:
                value.copy_(src)
        elif pairs and key.startswith("score."):  # (classes, in, 1, 1) and (classes,)
            value[new_ids] = src[old_ids]
        elif pairs and key.startswith("up2."):  # full class-to-class transposed conv (in, out, k, k)
            value[new_ids[:, None], new_ids[None, :]] = src[old_ids[:, None], old_ids[None, :]]
        elif pairs and key.startswith("up_final."):  # depthwise (classes, 1, k, k)
            value[new_ids] = src[old_ids]
    model.load_state_dict(new_state)
    new = [c for c in model.cfg.classes if c not in old_idx]
    grown = f"; {old.cfg.variant} -> {model.cfg.variant}" if old.strides != model.strides else ""
    return f"trunk + {len(pairs)} shared classes; new: {new or 'none'}{grown}"


def count_flops(model: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates x2 of every conv / transposed conv / linear, counted by forward hooks."""
    total = 0

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.ConvTranspose2d):
            macs = inp[0].numel() // inp[0].shape[0] * mod.out_channels // mod.groups
            macs *= mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Conv2d):
            macs = out.numel() // out.shape[0] * (mod.in_channels // mod.groups)
            macs *= mod.kernel_size[0] * mod.kernel_size[1]
        else:
            macs = mod.in_features * mod.out_features
        total += 2 * macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return total
