"""Training samples: several datasets mixed by share, frames at the model's height and their true
aspect, random patches of each frame (the paper's patchwise training), seeded end to end."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from fcn_perception.inference.preprocess import inference_size, preprocess_rgb
from fcn_perception.model.classes import VOID_ID
from fcn_perception.training.datasets import LabelledSplit, LabelReader, class_frequencies, load_class_map, open_split, read_pair
from fcn_perception.training.label_space import LabelSpace
from fcn_perception.training.pseudo_lanes import PseudoLaneRule, read_teacher_area


@dataclass
class AugmentConfig:
    """Scale, crop, flip and photometric variation: what makes a CamVid model survive other cameras."""

    crop: tuple[int, int] = (288, 288)  # (height, width) of each training patch
    scale: tuple[float, float] = (0.5, 2.0)  # random resize factor of the whole frame
    hflip: bool = True
    color: float = 0.4  # strength of brightness/contrast/saturation jitter, 0 disables
    hue: float = 0.05
    blur_noise: float = 0.2  # probability of camera-like blur or sensor noise


@dataclass
class DatasetSpec:
    """One dataset of a training recipe."""

    path: str
    layout: str = "auto"  # auto | segnet | generic
    class_map: str = ""  # YAML of dataset class -> model class | [classes] | void; "" = the dataset's names are the model's
    share: float = 1.0  # relative share of the frames drawn for training (0: used for selection only)
    aspect: float = 1.0  # width stretch that undoes a squashed copy (Cityscapes at 1:1 -> 2.0)
    train_split: str = "train"
    val_split: str = ""  # split used for model selection; "" = none (see holdout)
    holdout: int = 0  # frames set aside from the end of train_split for selection, never trained on
    pseudo_lanes: bool = False  # relabel sure paint / sure road inside the partial road (the run's teacher)

    def open(self, model_classes: list[str], space: LabelSpace | None = None) -> tuple[LabelledSplit, LabelledSplit | None, LabelReader]:
        """Train split (less the holdout), the selection split if any, and the label reader of both
        (its set ids registered in ``space``, shared by the run's datasets)."""
        train = open_split(self.path, self.train_split, self.layout)
        cmap = load_class_map(self.class_map) if self.class_map else None
        labels = LabelReader(train, model_classes, cmap, space)
        val = None
        if self.val_split:
            val = open_split(self.path, self.val_split, self.layout)
        elif self.holdout:
            if self.holdout >= len(train.pairs):
                raise ValueError(f"{self.path}: holdout {self.holdout} leaves no training frames of {len(train.pairs)}")
            val = LabelledSplit(train.root, f"{train.split}[-{self.holdout}:]", train.layout, train.classes, train.colours, train.pairs[-self.holdout :])
        if self.holdout:
            train.pairs = train.pairs[: -self.holdout]
        return train, val, labels


def train_transform(cfg: AugmentConfig, seed: int | None = None) -> A.Compose:
    h, w = cfg.crop
    ops: list = [
        A.RandomScale(scale_limit=(cfg.scale[0] - 1.0, cfg.scale[1] - 1.0), interpolation=cv2.INTER_LINEAR, p=1.0),
        A.PadIfNeeded(min_height=h, min_width=w, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=VOID_ID),
        A.RandomCrop(height=h, width=w),
    ]
    if cfg.hflip:
        ops.append(A.HorizontalFlip(p=0.5))
    if cfg.color > 0:
        ops.append(A.ColorJitter(brightness=cfg.color, contrast=cfg.color, saturation=cfg.color, hue=cfg.hue, p=0.8))
        ops.append(A.RandomGamma(gamma_limit=(70, 150), p=0.3))
    if cfg.blur_noise > 0:
        ops.append(
            A.OneOf(
                [
                    A.MotionBlur(blur_limit=(3, 7)),
                    A.GaussianBlur(blur_limit=(3, 5)),
                    A.GaussNoise(std_range=(0.02, 0.08)),
                    A.ImageCompression(quality_range=(30, 80)),
                ],
                p=cfg.blur_noise,
            )
        )
    return A.Compose(ops, seed=seed)


def normalize(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float tensor, normalised exactly as the inference pipeline does."""
    return torch.from_numpy(preprocess_rgb(rgb, (rgb.shape[1], rgb.shape[0]), mean, std)[0])


@dataclass
class Source:
    """A split's pairs with how to read and size them."""

    split: LabelledSplit
    labels: LabelReader
    aspect: float = 1.0
    #: pseudo-labels: the rule, and per pair the teacher's cached paint area (training/pseudo_lanes.py)
    pseudo: PseudoLaneRule | None = None
    teacher_areas: list[Path] | None = None


class SegmentationDataset(Dataset):
    """Frames + model-id labels from one or more sources, each frame first brought to ``height`` at its
    true aspect (the size inference runs it at); with a transform, each item is ``patches`` random
    patches of one frame, which costs one decode for many gradient samples.
    """

    def __init__(
        self,
        sources: list[Source],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        height: int,
        transform: A.Compose | None = None,
        patches: int = 1,
    ) -> None:
        self.items = [(s, frame, label) for s in sources for frame, label in s.split.pairs]
        self.pair_index = [i for s in sources for i in range(len(s.split.pairs))]
        self.offsets = np.cumsum([0] + [len(s.split.pairs) for s in sources])
        self.mean, self.std, self.height = mean, std, height
        self.transform, self.patches = transform, patches

    def __len__(self) -> int:
        return len(self.items)

    def load(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        source, frame, label = self.items[idx]
        img, lab = read_pair(frame, label, source.labels)
        h, w = lab.shape
        size = self._size(source, w, h)
        if size != (w, h):
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if size[1] < h else cv2.INTER_LINEAR)
            lab = cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)
        if source.pseudo is not None and source.teacher_areas is not None:
            area = read_teacher_area(source.teacher_areas[self.pair_index[idx]], lab.shape)
            if area is not None:
                lab = source.pseudo.relabel(img, lab, area)
        return img, lab

    def load_label(self, idx: int) -> np.ndarray:
        """The label alone, sized as :meth:`load` sizes it: class counts need no frame decoded."""
        source, _, label = self.items[idx]
        lab = source.labels(label)
        size = self._size(source, lab.shape[1], lab.shape[0])
        return lab if size == lab.shape[::-1] else cv2.resize(lab, size, interpolation=cv2.INTER_NEAREST)

    def _size(self, source: Source, w: int, h: int) -> tuple[int, int]:
        return inference_size(round(w * source.aspect), h, self.height, multiple=1)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = self.load(idx)
        if self.transform is None:
            return normalize(img, self.mean, self.std), torch.from_numpy(lab.astype(np.int64))
        xs, ys = [], []
        for _ in range(self.patches):
            out = self.transform(image=img, mask=lab)
            xs.append(normalize(out["image"], self.mean, self.std))
            ys.append(torch.from_numpy(out["mask"].astype(np.int64)))
        return torch.stack(xs), torch.stack(ys)


class MixSampler(Sampler[int]):
    """Draws ``length`` frames per epoch: a dataset by its share, then a frame of it uniformly.

    Seeded by (seed, rank, epoch), so every rank of a torchrun job draws its own frames and two runs
    with one seed draw the same ones.
    """

    def __init__(self, offsets: np.ndarray, shares: list[float], length: int, seed: int = 0, rank: int = 0) -> None:
        if any(s < 0 for s in shares) or not any(s > 0 for s in shares) or len(shares) != len(offsets) - 1:
            raise ValueError(f"one share >= 0 per dataset, at least one > 0 (0: selection only), got {shares}")
        self.offsets, self.length, self.seed, self.rank, self.epoch = offsets, length, seed, rank, 0
        p = np.asarray(shares, np.float64)
        self.p = p / p.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.rank, self.epoch])
        which = rng.choice(len(self.p), size=self.length, p=self.p)
        lo, hi = self.offsets[which], self.offsets[which + 1]
        return iter((lo + (rng.random(self.length) * (hi - lo)).astype(np.int64)).tolist())


def mix_frequencies(dataset: SegmentationDataset, shares: list[float], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Class frequencies of what training will see: each dataset's counts weighted by its share per frame,
    so a large dataset drawn rarely does not dominate the class weights."""
    pixels = np.zeros(num_classes, np.float64)
    with_frames = np.zeros(num_classes, np.float64)
    for i, share in enumerate(shares):
        if share == 0:
            continue
        lo, hi = dataset.offsets[i], dataset.offsets[i + 1]
        scored = dataset.items[lo][0].labels.space.scored_lut() if hi > lo else None  # a set counts as its first class
        p, f = class_frequencies((scored[dataset.load_label(j)] for j in range(lo, hi)), num_classes)
        pixels += p * share / max(1, hi - lo)
        with_frames += f * share / max(1, hi - lo)
    return pixels, with_frames


def seed_worker(worker_id: int) -> None:
    """DataLoader worker: reseed numpy and albumentations from torch's per-worker seed, which derives
    from the loader's seeded generator, so the same run seed gives the same patches."""
    info = torch.utils.data.get_worker_info()
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    transform = getattr(info.dataset, "transform", None) if info is not None else None
    if transform is not None:
        transform.set_random_seed(seed)
