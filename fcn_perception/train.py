"""Patchwise FCN training: ``fcn-perception train --config FILE`` (CPU, one GPU, or torchrun DDP)."""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .classes import VOID_ID
from .data import AugmentConfig, SegmentationDataset, camvid_pairs, class_weights, train_transform
from .fcn import ModelConfig, build_model, save_checkpoint
from .metrics import confusion_matrix, scores


@dataclass
class TrainConfig:
    data: str = "../shared/data/camvid"
    train_split: str = "train"
    val_split: str = "val"
    out: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrained: bool = True
    batch_size: int = 8  # patches per optimiser step (per process under DDP)
    patches_per_image: int = 2  # patches sampled from each decoded frame
    iterations: int = 4000
    max_minutes: float = 0.0  # >0: stop by wall clock; the LR schedule follows whichever ends first
    lr: float = 2e-3
    backbone_lr_scale: float = 0.5
    weight_decay: float = 1e-4
    warmup: int = 100
    class_weighting: str = "median_freq"  # none | median_freq | enet
    class_weight_power: float = 1.0  # 0.5 softens median-frequency weights towards large classes (road)
    loss_sampling: float = 1.0  # fraction of 32x32 loss cells kept per patch (paper's loss sampling)
    label_smoothing: float = 0.0
    eval_every: int = 250
    workers: int = 1
    seed: int = 0
    amp: bool = True  # only on CUDA
    device: str = "auto"

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        raw = dict(raw)
        raw["model"] = ModelConfig(**raw.get("model", {}))
        aug = dict(raw.get("augment", {}))
        for key in ("crop", "scale"):
            if key in aug:
                aug[key] = tuple(aug[key])
        raw["augment"] = AugmentConfig(**aug)
        return cls(**raw)


def sample_loss_cells(target: torch.Tensor, keep: float, cell: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mark whole ``cell x cell`` blocks as void with probability ``1 - keep``.

    The paper's loss sampling: fewer, less correlated gradient samples per patch. Dropping cells
    rather than single pixels matches its sampling of final-layer cells.
    """
    if keep >= 1.0:
        return target
    n, h, w = target.shape
    gh, gw = math.ceil(h / cell), math.ceil(w / cell)
    drop = torch.rand(n, 1, gh, gw, generator=generator, device=target.device) >= keep
    drop = F.interpolate(drop.float(), scale_factor=cell, mode="nearest")[:, 0, :h, :w].bool()
    return target.masked_fill(drop, VOID_ID)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, loader: DataLoader, num_classes: int, device: torch.device) -> np.ndarray:
    model.eval()
    conf = np.zeros((num_classes, num_classes), np.int64)
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu().numpy()
        conf += confusion_matrix(pred, y.numpy(), num_classes)
    return conf


def _setup_distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Train, keeping ``best.pt`` (by val mIoU) and ``last.pt`` (resumable) under ``cfg.out``."""
    rank, world = _setup_distributed()
    if cfg.device == "auto":
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    seed = cfg.seed + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(_plain(asdict(cfg)), sort_keys=False))
    mc = cfg.model
    train_pairs = camvid_pairs(cfg.data, cfg.train_split)
    val_pairs = camvid_pairs(cfg.data, cfg.val_split)
    weights = class_weights(train_pairs, mc.num_classes, cfg.class_weighting)
    if weights is not None:
        weights = (weights**cfg.class_weight_power).to(device)

    train_ds = SegmentationDataset(train_pairs, mc.mean, mc.std, train_transform(cfg.augment), cfg.patches_per_image)
    val_ds = SegmentationDataset(val_pairs, mc.mean, mc.std, size=mc.input_size)
    images_per_step = max(1, cfg.batch_size // cfg.patches_per_image)
    sampler = DistributedSampler(train_ds, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(
        train_ds,
        batch_size=images_per_step,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        worker_init_fn=lambda i: np.random.seed(seed * 100 + i + int(time.time()) % 1000),
    )
    val_loader = DataLoader(val_ds, batch_size=4, num_workers=cfg.workers)

    model: torch.nn.Module = build_model(mc, pretrained=cfg.pretrained).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    backbone_params = list(model.backbone.parameters())
    ids = {id(p) for p in backbone_params}
    head_params = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW(
        [{"params": backbone_params, "lr": cfg.lr * cfg.backbone_lr_scale}, {"params": head_params, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    step, best, elapsed_before = 0, -1.0, 0.0
    last = out / "last.pt"
    if resume and last.is_file():
        state = torch.load(last, map_location=device, weights_only=True)
        model.load_state_dict(state["state_dict"])
        opt.load_state_dict(state["optimizer"])
        step, best, elapsed_before = state["step"], state["best_miou"], state.get("elapsed_s", 0.0)
        print(f"resumed from {last} at step {step} (best val mIoU {best:.4f})")
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    log_path = out / "log.csv"
    new_log = not log_path.is_file() or not resume
    log_file = open(log_path, "w" if new_log else "a", newline="")  # noqa: SIM115 - closed after the loop
    log = csv.writer(log_file)
    if new_log:
        log.writerow(["step", "elapsed_s", "lr", "loss", "val_miou", "val_road_iou", "val_pixel_acc"])

    start = time.time() - elapsed_before
    budget_s = cfg.max_minutes * 60.0
    gen = torch.Generator(device="cpu").manual_seed(seed)
    bar = tqdm(total=cfg.iterations, initial=step, disable=rank != 0, desc="train", dynamic_ncols=True)
    running, epoch = None, 0
    done = step >= cfg.iterations
    while not done:
        if sampler is not None:
            sampler.set_epoch(epoch)
        epoch += 1
        net.train()
        for x, y in loader:
            x = x.flatten(0, 1).to(device, non_blocking=True)
            y = sample_loss_cells(y.flatten(0, 1), cfg.loss_sampling, generator=gen).to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            elapsed = time.time() - start
            progress = max(step / cfg.iterations, elapsed / budget_s if budget_s else 0.0)
            factor = min(1.0, (step + 1) / max(1, cfg.warmup)) * (1 - min(progress, 0.999)) ** 0.9  # warmup + poly
            for g, base in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = base * factor
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, weight=weights, ignore_index=VOID_ID, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{running:.3f}", lr=f"{opt.param_groups[1]['lr']:.1e}")
            out_of_time = budget_s and time.time() - start >= budget_s
            done = step >= cfg.iterations or bool(out_of_time)
            if rank == 0 and (step % cfg.eval_every == 0 or done):
                res = scores(evaluate_model(model, val_loader, mc.num_classes, device), mc.classes)
                road = res["per_class_iou"].get("Road")
                log.writerow(
                    [
                        step,
                        f"{time.time() - start:.0f}",
                        f"{opt.param_groups[1]['lr']:.3e}",
                        f"{running:.4f}",
                        f"{res['miou']:.4f}",
                        f"{road or 0:.4f}",
                        f"{res['pixel_accuracy']:.4f}",
                    ]
                )
                log_file.flush()
                tqdm.write(f"step {step}: val mIoU {res['miou']:.4f} road {road or 0:.4f} acc {res['pixel_accuracy']:.4f}")
                if res["miou"] > best:
                    best = res["miou"]
                    save_checkpoint(out / "best.pt", model, {"val": res, "step": step})
                save_checkpoint(last, model, {"optimizer": opt.state_dict(), "step": step, "best_miou": best, "elapsed_s": time.time() - start})
                net.train()
            if done:
                break
    bar.close()
    log_file.close()
    if world > 1:
        dist.destroy_process_group()
    return out / "best.pt"


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
