"""Road-scene datasets, augmentation and class-imbalance weights (no ROS here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .classes import VOID_ID
from .preprocess import preprocess_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 frame; OpenCV's silent ``None`` for unreadable files becomes a clear error."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label(path: str | Path) -> np.ndarray:
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise ValueError(f"cannot read label {path}")
    if lab.ndim != 2:
        raise ValueError(f"label {path} must be single-channel class ids, got shape {lab.shape}")
    return lab


def camvid_pairs(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """(frame, label) pairs of the SegNet layout: ``root/<split>/`` frames, ``root/<split>annot/`` labels."""
    root = Path(root)
    frames_dir, labels_dir = root / split, root / f"{split}annot"
    if not frames_dir.is_dir() or not labels_dir.is_dir():
        raise FileNotFoundError(f"{root}: expected {split}/ and {split}annot/ folders (CamVid SegNet layout)")
    pairs = []
    for frame in sorted(p for p in frames_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = labels_dir / frame.with_suffix(".png").name
        if not label.is_file():
            raise FileNotFoundError(f"no label for {frame} (looked for {label})")
        pairs.append((frame, label))
    if not pairs:
        raise FileNotFoundError(f"no frames in {frames_dir}")
    return pairs


@dataclass
class AugmentConfig:
    """Scale, crop, flip and photometric variation: what makes a CamVid model survive other cameras."""

    crop: tuple[int, int] = (288, 288)  # (height, width) of each training patch
    scale: tuple[float, float] = (0.5, 2.0)  # random resize factor of the whole frame
    hflip: bool = True
    color: float = 0.4  # strength of brightness/contrast/saturation jitter, 0 disables
    hue: float = 0.05
    blur_noise: float = 0.2  # probability of camera-like blur or sensor noise


def train_transform(cfg: AugmentConfig) -> A.Compose:
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
    return A.Compose(ops)


def normalize(rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float tensor, normalised exactly as the inference pipeline does."""
    return torch.from_numpy(preprocess_rgb(rgb, (rgb.shape[1], rgb.shape[0]), mean, std)[0])


class SegmentationDataset(Dataset):
    """Frames + labels; with a transform, each item is ``patches`` random patches of one frame.

    Patchwise training: several patches of the same frame in one batch (the paper's sampling of
    patches within images), which costs one image decode for many gradient samples.
    """

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        transform: A.Compose | None = None,
        patches: int = 1,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.pairs, self.mean, self.std = pairs, mean, std
        self.transform, self.patches, self.size = transform, patches, size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        frame, label = self.pairs[idx]
        img, lab = read_rgb(frame), read_label(label)
        if self.size is not None and img.shape[1::-1] != tuple(self.size):
            img = cv2.resize(img, self.size, interpolation=cv2.INTER_LINEAR)
            lab = cv2.resize(lab, self.size, interpolation=cv2.INTER_NEAREST)
        if self.transform is None:
            return normalize(img, self.mean, self.std), torch.from_numpy(lab.astype(np.int64))
        xs, ys = [], []
        for _ in range(self.patches):
            out = self.transform(image=img, mask=lab)
            xs.append(normalize(out["image"], self.mean, self.std))
            ys.append(torch.from_numpy(out["mask"].astype(np.int64)))
        return torch.stack(xs), torch.stack(ys)


def class_frequencies(pairs: list[tuple[Path, Path]], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class pixel counts, and labelled pixels of the frames each class appears in (void excluded)."""
    pixels = np.zeros(num_classes, np.int64)
    pixels_of_frames_with = np.zeros(num_classes, np.int64)
    for _, label in pairs:
        counts = np.bincount(read_label(label).ravel(), minlength=256)[:num_classes]
        pixels += counts
        pixels_of_frames_with += (counts > 0) * counts.sum()
    return pixels, pixels_of_frames_with


def class_weights(pairs: list[tuple[Path, Path]], num_classes: int, method: str) -> torch.Tensor | None:
    """Loss weights against class imbalance.

    ``median_freq`` (Eigen & Fergus, used by SegNet on CamVid): freq(c) = pixels of c / pixels of the
    frames where c appears, weight = median(freq) / freq(c). ``enet``: 1 / ln(1.02 + p(c)).
    """
    if method == "none":
        return None
    pixels, pixels_of_frames_with = class_frequencies(pairs, num_classes)
    if method == "median_freq":
        freq = pixels / np.maximum(pixels_of_frames_with, 1)
        w = np.median(freq) / np.maximum(freq, 1e-12)
    elif method == "enet":
        p = pixels / max(1, pixels.sum())
        w = 1.0 / np.log(1.02 + p)
    else:
        raise ValueError(f"class weighting must be none, median_freq or enet, got {method!r}")
    return torch.tensor(w, dtype=torch.float32)
