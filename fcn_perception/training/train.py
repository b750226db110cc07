"""Patchwise FCN training: ``fcn-perception train --config FILE`` (CPU, one GPU, or torchrun DDP).

Shaped like torchvision's segmentation reference: :func:`train` (main) sets up data, model and
optimiser; :func:`train_one_epoch` runs steps; :func:`evaluate` scores the selection sets.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from fcn_perception.model.classes import CAMVID_CLASSES, VOID_ID
from fcn_perception.model.fcn import ModelConfig, build_model, init_from_checkpoint, load_model, save_checkpoint
from fcn_perception.training.datasets import LabelReader, class_weights
from fcn_perception.training.label_space import LabelSpace
from fcn_perception.training.metrics import confusion_matrix, scores
from fcn_perception.training.patches import AugmentConfig, DatasetSpec, MixSampler, SegmentationDataset, Source, mix_frequencies, seed_worker, train_transform
from fcn_perception.training.pseudo_lanes import PseudoLaneRule, prepare_teacher_areas


@dataclass
class TrainConfig:
    data: str = "../shared/data/camvid"  # shorthand for one dataset when ``datasets`` is empty
    train_split: str = "train"
    val_split: str = "val"
    datasets: list[DatasetSpec] = field(default_factory=list)
    out: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrained: bool = True  # ImageNet trunk
    init: str = ""  # start from this checkpoint (fine-tuning); shared classes keep their scores
    teacher: str = ""  # model whose lane paint seeds the pseudo-labels of datasets with pseudo_lanes
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
    checkpoint_minutes: float = 5.0  # resumable last.pt at least this often by wall clock
    workers: int = 1
    seed: int = 0
    amp: bool = True  # only on CUDA
    device: str = "auto"

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
        specs = []
        for d in raw.get("datasets", []):
            bad = set(d) - {f.name for f in fields(DatasetSpec)}
            if bad:
                raise ValueError(f"unknown dataset options: {sorted(bad)}")
            specs.append(DatasetSpec(**d))
        raw["datasets"] = specs
        return cls(**raw)

    def dataset_specs(self) -> list[DatasetSpec]:
        return self.datasets or [DatasetSpec(path=self.data, train_split=self.train_split, val_split=self.val_split)]


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


def partial_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, members: torch.Tensor | None, weight: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy where a label id may stand for a set of classes (:mod:`label_space`).

    A set pixel's loss is ``-log(sum of its members' probabilities)``: it teaches "one of these", not
    which. ``members`` is the (targets, classes) bool table of :meth:`LabelSpace.membership`; with no
    set ids in it this is exactly ``F.cross_entropy`` (weighted mean over non-void pixels). A set
    pixel is weighted as its first member; label smoothing spreads over all classes as usual.
    """
    n_cls = logits.shape[1]
    if members is None or members.shape[0] == n_cls:
        return F.cross_entropy(logits, target, weight=weight, ignore_index=VOID_ID, label_smoothing=label_smoothing)
    logp = F.log_softmax(logits.float(), 1)
    valid = target != VOID_ID
    t = torch.where(valid, target, torch.zeros_like(target)).clamp(max=members.shape[0] - 1)
    allowed = members[t].permute(0, 3, 1, 2)  # (N, C, H, W)
    nll = -torch.logsumexp(logp.masked_fill(~allowed, float("-inf")), 1)
    if label_smoothing:
        nll = (1 - label_smoothing) * nll - label_smoothing * logp.mean(1)
    first = members.float().argmax(1)[t]  # first member of each target's set (a class: itself)
    w = valid.float() if weight is None else weight[first] * valid
    return (nll * w).sum() / w.sum().clamp(min=1e-12)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader: DataLoader, labels: LabelReader, device: torch.device) -> dict:
    """Scores of one selection set, frames at their inference size (one per batch); set labels
    scored as :meth:`LabelSpace.resolve` says, only the classes this set can label."""
    model.eval()
    n = labels.space.num_classes
    conf = np.zeros((n, n), np.int64)
    for x, y in loader:
        pred = model(x.to(device)).argmax(1).cpu().numpy()
        conf += confusion_matrix(*labels.space.resolve(pred, y.numpy()), n)
    return scores(conf, labels.space.classes, labels.scored)


class Budget:
    """Step and wall-clock budget, decided on rank 0 and broadcast, so every rank of a torchrun job
    uses the same learning rate and stops at the same step."""

    def __init__(self, cfg: TrainConfig, elapsed_before: float, world: int) -> None:
        self.iterations, self.budget_s, self.world = cfg.iterations, cfg.max_minutes * 60.0, world
        self.start = time.time() - elapsed_before

    def elapsed(self) -> float:
        return time.time() - self.start

    def progress(self, step: int) -> float:
        """Fraction done by whichever ends first, steps or time: the same number on every rank."""
        p = torch.tensor([max(step / self.iterations, self.elapsed() / self.budget_s if self.budget_s else 0.0)], dtype=torch.float64)
        if self.world > 1:
            dist.broadcast(p, 0)
        return float(p)


def lr_factor(step: int, progress: float, warmup: int) -> float:
    """Linear warm-up then poly decay over the budget's progress."""
    return min(1.0, (step + 1) / max(1, warmup)) * (1 - min(progress, 0.999)) ** 0.9


@dataclass
class State:
    step: int = 0
    best: float = -1.0
    running: float | None = None
    last_checkpoint: float = field(default_factory=time.time)


def train_one_epoch(net, loader, opt, scaler, weights, members, cfg: TrainConfig, budget: Budget, state: State, device, gen, bar, on_step) -> bool:
    """Steps over one pass of the sampler; returns True when the budget is spent."""
    net.train()
    use_amp = scaler.is_enabled()
    base_lrs = [g["initial_lr"] for g in opt.param_groups]
    for x, y in loader:
        x = x.flatten(0, 1).to(device, non_blocking=True)
        y = sample_loss_cells(y.flatten(0, 1), cfg.loss_sampling, generator=gen).to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        progress = budget.progress(state.step)
        if progress >= 1.0:
            return True
        for g, base in zip(opt.param_groups, base_lrs, strict=True):
            g["lr"] = base * lr_factor(state.step, progress, cfg.warmup)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = net(x)
            loss = partial_cross_entropy(logits.float(), y, members, weights, cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        state.step += 1
        state.running = loss.item() if state.running is None else 0.95 * state.running + 0.05 * loss.item()
        bar.n = round(min(1.0, budget.progress(state.step)) * 1000)  # ETA follows steps or time, whichever ends first
        bar.set_postfix(step=state.step, loss=f"{state.running:.3f}", lr=f"{opt.param_groups[-1]['lr']:.1e}")
        on_step()
        net.train()
    return False


def _setup_distributed() -> tuple[int, int]:
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _device_and_seed(cfg: TrainConfig, rank: int) -> tuple[torch.device, int]:
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
    return device, seed


@dataclass
class Data:
    """The run's data: the training mix, the selection sets, the class weights and the partial-label sets."""

    loader: DataLoader
    sampler: MixSampler
    val_loaders: list[tuple[str, DataLoader, LabelReader]]
    weights: torch.Tensor | None
    members: torch.Tensor


def _open(cfg: TrainConfig, space: LabelSpace) -> tuple[list[Source], list[tuple[str, SegmentationDataset, LabelReader]]]:
    """Each dataset's training source, and the selection sets (name, frames, labels)."""
    mc = cfg.model
    train_sources, val_sets = [], []
    for spec in cfg.dataset_specs():
        tr, val, labels = spec.open(mc.classes, space)
        train_sources.append(Source(tr, labels, spec.aspect))
        if val is not None:
            val_ds = SegmentationDataset([Source(val, labels, spec.aspect)], mc.mean, mc.std, mc.input_size[1])
            val_sets.append((Path(spec.path).name + "/" + val.split, val_ds, labels))
    return train_sources, val_sets


def _data(cfg: TrainConfig, device: torch.device, seed: int, rank: int, world: int) -> Data:
    mc = cfg.model
    height = mc.input_size[1]
    specs = cfg.dataset_specs()
    space = LabelSpace(mc.classes)  # one for the run: a set id means the same classes in every dataset
    train_sources, val_sets = _open(cfg, space)
    if rank == 0 and space.sets:
        print("partial labels: " + ", ".join("[" + ", ".join(mc.classes[c] for c in s) + "]" for s in space.sets))
    shares = [s.share for s in specs]
    train_ds = SegmentationDataset(train_sources, mc.mean, mc.std, height, train_transform(cfg.augment, seed), cfg.patches_per_image)
    _arm_pseudo_lanes(cfg, specs, train_sources, train_ds, space, rank)
    weights = None
    if cfg.class_weighting != "none":
        w = class_weights(*mix_frequencies(train_ds, shares, mc.num_classes), cfg.class_weighting)
        weights = torch.tensor(w**cfg.class_weight_power, dtype=torch.float32, device=device)
    images_per_step = max(1, cfg.batch_size // cfg.patches_per_image)
    sampler = MixSampler(train_ds.offsets, shares, length=max(images_per_step, len(train_ds) // world), seed=cfg.seed, rank=rank)
    loader = DataLoader(
        train_ds,
        batch_size=images_per_step,
        sampler=sampler,
        num_workers=cfg.workers,
        drop_last=True,
        persistent_workers=cfg.workers > 0,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loaders = [(name, DataLoader(ds, batch_size=1, num_workers=cfg.workers), labels) for name, ds, labels in val_sets]
    return Data(loader, sampler, val_loaders, weights, torch.from_numpy(space.membership()).to(device))


def _arm_pseudo_lanes(cfg: TrainConfig, specs: list[DatasetSpec], sources: list[Source], dataset: SegmentationDataset, space: LabelSpace, rank: int) -> None:
    chosen = [(spec, src) for spec, src in zip(specs, sources, strict=True) if spec.pseudo_lanes]
    if not chosen:
        return
    if not cfg.teacher:
        raise ValueError("datasets with pseudo_lanes need a teacher model (the option teacher)")
    names = list(cfg.model.classes)
    if "Road" not in names or "LaneMarking" not in names:
        raise ValueError("pseudo_lanes needs the model classes Road and LaneMarking")
    rule = PseudoLaneRule(space.target_id(["Road", "LaneMarking"]), names.index("Road"), names.index("LaneMarking"))
    ran = prepare_teacher_areas(dataset, [s for _, s in chosen], [spec.path for spec, _ in chosen], cfg.teacher, Path(cfg.out), rule)
    if rank == 0:
        print(f"pseudo lane labels on {', '.join(Path(spec.path).name for spec, _ in chosen)} (teacher {cfg.teacher}, run on {ran} frames)")


def _model_and_optimizer(cfg: TrainConfig, device: torch.device, rank: int):
    """The network (pretrained backbone, or a checkpoint to fine-tune from) and AdamW with the
    backbone at ``backbone_lr_scale`` of the head's rate. A pruned ``init`` (tools/prune_model.py)
    trains at its own widths unless the config names others."""
    model_cfg = cfg.model
    if cfg.init and not model_cfg.hidden:
        model_cfg = replace(model_cfg, hidden=load_model(cfg.init).cfg.hidden)
    model = build_model(model_cfg, pretrained=cfg.pretrained and not cfg.init)
    if cfg.init:
        kept = init_from_checkpoint(model, cfg.init)
        if rank == 0:
            print(f"initialised from {cfg.init}: {kept}")
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    backbone_params = list(model.backbone.parameters())
    ids = {id(p) for p in backbone_params}
    head_params = [p for p in model.parameters() if id(p) not in ids]
    opt = torch.optim.AdamW(
        [{"params": backbone_params, "lr": cfg.lr * cfg.backbone_lr_scale}, {"params": head_params, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    return model, opt


class Selection:
    """Model selection on the val sets: one log row per evaluation (log.csv), ``best.pt`` kept by
    mean selection mIoU, ``last.pt`` for resuming. Rank 0 alone writes: a second writer would
    truncate the log under the first."""

    def __init__(self, cfg: TrainConfig, model, opt, val_loaders, state: State, budget: Budget, device: torch.device) -> None:
        self.cfg, self.model, self.opt, self.val_loaders, self.state, self.budget, self.device = cfg, model, opt, val_loaders, state, budget, device
        self.out = Path(cfg.out)
        self.log_file, self.log = None, None

    def columns(self) -> list[str]:
        classes, vl = self.cfg.model.classes, self.val_loaders
        columns = ["step", "elapsed_s", "lr", "loss", "val_miou", "val_road_iou", "val_pixel_acc"]
        columns += [f"{name}:{k}" for name, _, _ in vl for k in ("miou", "road")] if len(vl) > 1 else []
        return columns + [f"{name}:{classes[c]}" for name, _, lab in vl for c in _extra_classes(lab, classes)]

    def open_log(self, resume: bool) -> None:
        path = self.out / "log.csv"
        new = not path.is_file() or not resume
        self.log_file = open(path, "w" if new else "a", newline="")  # noqa: SIM115 - closed by close()
        self.log = csv.writer(self.log_file)
        if new:
            self.log.writerow(self.columns())

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()

    def checkpoint(self) -> None:
        extra = {"optimizer": self.opt.state_dict(), "step": self.state.step, "best_miou": self.state.best, "elapsed_s": self.budget.elapsed()}
        save_checkpoint(self.out / "last.pt", self.model, extra)
        self.state.last_checkpoint = time.time()

    def select(self) -> None:
        results = [(name, evaluate(self.model, vl, lab, self.device)) for name, vl, lab in self.val_loaders]
        if not results:
            return
        state, classes = self.state, self.cfg.model.classes
        miou = float(np.mean([r["miou"] for _, r in results]))
        road = float(np.mean([r["per_class_iou"].get("Road") or 0.0 for _, r in results]))
        acc = float(np.mean([r["pixel_accuracy"] for _, r in results]))
        lr = self.opt.param_groups[-1]["lr"]
        row = [state.step, f"{self.budget.elapsed():.0f}", f"{lr:.3e}", f"{state.running or 0:.4f}", f"{miou:.4f}", f"{road:.4f}", f"{acc:.4f}"]
        if len(results) > 1:
            row += [f"{v:.4f}" for _, r in results for v in (r["miou"], r["per_class_iou"].get("Road") or 0.0)]
        pairs = zip(results, self.val_loaders, strict=True)
        extra = [(name, classes[c], r) for (name, r), (_, _, lab) in pairs for c in _extra_classes(lab, classes)]
        row += [f"{r['per_class_iou'][c] or 0.0:.4f}" for _, c, r in extra]
        self.log.writerow(row)
        self.log_file.flush()
        detail = "  ".join(f"{name} {r['miou']:.4f}" for name, r in results)
        detail += "".join(f"  {name}:{c} {r['per_class_iou'][c] or 0.0:.4f}" for name, c, r in extra)
        tqdm.write(f"step {state.step}: selection mIoU {miou:.4f} road {road:.4f}  ({detail})")
        if miou > state.best:
            state.best = miou
            save_checkpoint(self.out / "best.pt", self.model, {"val": {name: r for name, r in results}, "step": state.step})

    def on_step(self) -> None:
        if self.state.step % self.cfg.eval_every == 0:
            self.select()
            self.checkpoint()
        elif self.cfg.checkpoint_minutes and time.time() - self.state.last_checkpoint >= self.cfg.checkpoint_minutes * 60:
            self.checkpoint()


def _resume(last: Path, model, opt, state: State, device: torch.device, rank: int) -> float:
    """Model, optimizer and progress from ``last.pt``; returns the seconds already trained."""
    saved = torch.load(last, map_location=device, weights_only=True)
    model.load_state_dict(saved["state_dict"])
    opt.load_state_dict(saved["optimizer"])
    state.step, state.best = saved["step"], saved["best_miou"]
    if rank == 0:
        print(f"resumed from {last} at step {state.step} (best selection mIoU {state.best:.4f})")
    return saved.get("elapsed_s", 0.0)


def train(cfg: TrainConfig, resume: bool = True) -> Path:
    """Train, keeping ``best.pt`` (by mean selection mIoU) and ``last.pt`` (resumable) under ``cfg.out``."""
    rank, world = _setup_distributed()
    device, seed = _device_and_seed(cfg, rank)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(_plain(asdict(cfg)), sort_keys=False))
    data = _data(cfg, device, seed, rank, world)
    model, opt = _model_and_optimizer(cfg, device, rank)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    state, elapsed_before = State(), 0.0
    if resume and (out / "last.pt").is_file():
        elapsed_before = _resume(out / "last.pt", model, opt, state, device, rank)
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    budget = Budget(cfg, elapsed_before, world)
    selection = Selection(cfg, model, opt, data.val_loaders, state, budget, device)
    if rank == 0:
        selection.open_log(resume)
    try:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        bar = tqdm(total=1000, disable=rank != 0, desc="train", dynamic_ncols=True, bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")
        on_step = selection.on_step if rank == 0 else (lambda: None)
        done, epoch = budget.progress(state.step) >= 1.0, 0
        while not done:
            data.sampler.set_epoch(epoch)
            epoch += 1
            done = train_one_epoch(net, data.loader, opt, scaler, data.weights, data.members, cfg, budget, state, device, gen, bar, on_step)
        bar.close()
        if rank == 0 and state.step % cfg.eval_every != 0:
            selection.select()
            selection.checkpoint()
    finally:
        selection.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out / "best.pt"


def select_only(cfg: TrainConfig) -> dict[str, dict]:
    """The starting model (``init``) scored on the run's selection sets without a step of training:
    the row a run's step 0 would log, so a run (or several, at equal steps) is read against it."""
    device = torch.device("cpu")
    model, _ = _model_and_optimizer(cfg, device, 0)
    _, val_sets = _open(cfg, LabelSpace(cfg.model.classes))
    results = {name: evaluate(model, DataLoader(ds, batch_size=1, num_workers=cfg.workers), labels, device) for name, ds, labels in val_sets}
    classes = cfg.model.classes
    for (name, r), (_, _, labels) in zip(results.items(), val_sets, strict=True):
        extra = "".join(f"  {classes[c]} {r['per_class_iou'][classes[c]] or 0.0:.4f}" for c in _extra_classes(labels, classes))
        print(f"{name}: mIoU {r['miou']:.4f}  Road {r['per_class_iou'].get('Road') or 0.0:.4f}{extra}")
    print(f"selection mIoU {float(np.mean([r['miou'] for r in results.values()])):.4f}")
    return results


def _extra_classes(labels: LabelReader, classes: list[str]) -> list[int]:
    """Classes past CamVid's 11 that a selection set labels (a LaneMarking): logged on their own, as
    a thin class barely moves a mean."""
    return [c for c in labels.scored if c >= len(CAMVID_CLASSES) and c < len(classes)]


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
