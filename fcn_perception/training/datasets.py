"""Labelled road-scene frames on disk: the two layouts users bring, read into model class ids (no ROS).

Layouts (detected, or named):

- ``segnet``: ``ROOT/<split>/`` frames and ``ROOT/<split>annot/`` single-channel id labels whose ids
  are CamVid's 11 classes (values past them are void) — the CamVid SegNet split.
- ``generic``: ``ROOT/class_dict.csv`` (``name,r,g,b``) + ``ROOT/<split>/images/`` +
  ``ROOT/<split>/labels/``; labels are colour PNGs in the csv's colours, or single-channel PNGs of
  ids in csv order — what Cityscapes/Mapillary-style exports and most labelling tools write.

A class map (dataset class name → model class name, a list of them, or ``void``) turns dataset ids
into model ids; a list is a partial label ("one of these", :mod:`label_space`). Without a map, the
dataset's class names must be the model's.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fcn_perception.inference.frames import FrameReadError, image_files, read_rgb
from fcn_perception.model.classes import CAMVID_CLASSES, VOID_ID
from fcn_perception.training.label_space import LabelSpace

LAYOUTS = ("auto", "segnet", "generic")
#: Dataset class names that mean "no class" in every label set we have met; they need no map entry.
VOID_NAMES = frozenset({"void", "unlabelled", "unlabeled", "ignore"})


class DatasetError(ValueError):
    """A dataset on disk that cannot be used as it is; the message says what was expected."""


def read_class_dict(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``name,r,g,b`` rows (a header row is optional) -> names and an (n, 3) uint8 RGB array."""
    names, colours = [], []
    with open(path, newline="") as f:
        for i, row in enumerate(csv.reader(f)):
            if not row or (i == 0 and row[0].strip().lower() in ("name", "class", "label")):
                continue
            if len(row) < 4:
                raise DatasetError(f"{path}:{i + 1}: expected name,r,g,b, got {row!r}")
            try:
                rgb = tuple(int(v) for v in row[1:4])
            except ValueError:
                raise DatasetError(f"{path}:{i + 1}: r,g,b must be integers 0-255, got {row[1:4]!r}") from None
            names.append(row[0].strip())
            colours.append(rgb)
    if not names:
        raise DatasetError(f"{path}: no classes")
    if len(set(colours)) != len(colours):
        raise DatasetError(f"{path}: two classes share a colour")
    return names, np.array(colours, np.uint8)


@dataclass
class LabelledSplit:
    """One split of a dataset: its frame/label pairs and the class list its labels are written in."""

    root: Path
    split: str
    layout: str
    classes: list[str]
    colours: np.ndarray | None  # generic layout: (n, 3) RGB of each class, for colour labels
    pairs: list[tuple[Path, Path]] = field(repr=False)


def detect_layout(root: str | Path, split: str) -> str:
    root = Path(root)
    if (root / "class_dict.csv").is_file() and (root / split / "images").is_dir():
        return "generic"
    if (root / split).is_dir() and (root / f"{split}annot").is_dir():
        return "segnet"
    raise DatasetError(
        f"{root}: no split {split!r} in a known layout: expected class_dict.csv + {split}/images/ + {split}/labels/ "
        f"(generic) or {split}/ + {split}annot/ (CamVid SegNet)"
    )


def open_split(root: str | Path, split: str, layout: str = "auto") -> LabelledSplit:
    """Find every frame of ``split`` and its label; a frame without a label is an error, not a skip."""
    root = Path(root)
    if layout not in LAYOUTS:
        raise DatasetError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if layout == "auto":
        layout = detect_layout(root, split)
    if layout == "generic":
        classes, colours = read_class_dict(root / "class_dict.csv")
        frames_dir, labels_dir = root / split / "images", root / split / "labels"
    else:
        classes, colours = list(CAMVID_CLASSES), None
        frames_dir, labels_dir = root / split, root / f"{split}annot"
    for d in (frames_dir, labels_dir):
        if not d.is_dir():
            raise DatasetError(f"{root}: expected folder {d.relative_to(root)}/ ({layout} layout)")
    pairs = []
    for frame in image_files(frames_dir):
        label = labels_dir / frame.with_suffix(".png").name
        if not label.is_file():
            raise DatasetError(f"no label for {frame} (looked for {label})")
        pairs.append((frame, label))
    if not pairs:
        raise DatasetError(f"split {split!r} of {root} is empty: no frames in {frames_dir}")
    return LabelledSplit(root, split, layout, classes, colours, pairs)


ClassMap = dict[str, "str | list[str]"]


def load_class_map(path: str | Path) -> ClassMap:
    """A YAML mapping ``dataset class: model class | [model class, ...] | void``."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"class map not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None

    def target_ok(v: object) -> bool:
        return isinstance(v, str) or (isinstance(v, list) and bool(v) and all(isinstance(t, str) and t != "void" for t in v))

    if not isinstance(raw, dict) or not all(isinstance(k, str) and target_ok(v) for k, v in raw.items()):
        raise DatasetError(f"{path}: expected a mapping of dataset class name to a model class name, a list of them, or void")
    return raw


def id_lut(dataset_classes: list[str], model_classes: list[str] | tuple[str, ...], class_map: ClassMap | None, space: LabelSpace | None = None) -> np.ndarray:
    """(256,) uint8: dataset label id -> model id, or the set id of a listed target in ``space``
    (``VOID_ID`` for void and for ids past the list).

    Every dataset class must be accounted for: a silent void would quietly teach the model that a
    class is background, so a missing or unknown name is an error that lists the valid names.
    """
    space = space or LabelSpace(model_classes)
    model = {name: i for i, name in enumerate(model_classes)}
    lut = np.full(256, VOID_ID, np.uint8)
    if class_map is None:
        missing = [c for c in dataset_classes if c not in model and c.lower() not in VOID_NAMES]
        if missing:
            raise DatasetError(
                f"dataset classes {missing} are not model classes {list(model_classes)}: give a class map (YAML: dataset class: model class or void)"
            )
        class_map = {c: c for c in dataset_classes if c in model}
    else:
        missing = [c for c in dataset_classes if c not in class_map and c.lower() not in VOID_NAMES]
        if missing:
            raise DatasetError(f"class map has no entry for dataset classes {missing}; map each to one of {list(model_classes)} or void")
        stray = sorted(set(class_map) - set(dataset_classes))
        if stray:
            raise DatasetError(f"class map names {stray}, which the dataset does not have (its classes: {dataset_classes})")
        bad = sorted({t for v in class_map.values() for t in ([v] if isinstance(v, str) else v) if t != "void" and t not in model})
        if bad:
            raise DatasetError(f"class map targets {bad} are not model classes; use one of {list(model_classes)} or void")
    for i, name in enumerate(dataset_classes[:255]):
        target = class_map.get(name, "void")
        if target != "void":
            lut[i] = space.target_id([target] if isinstance(target, str) else target)
    return lut


class LabelReader:
    """Reads one split's label files as model class ids, counting pixels whose colour is in no class."""

    def __init__(
        self, ds: LabelledSplit, model_classes: list[str] | tuple[str, ...], class_map: ClassMap | None = None, space: LabelSpace | None = None
    ) -> None:
        self.space = space or LabelSpace(model_classes)
        self.lut = id_lut(ds.classes, model_classes, class_map, self.space)
        #: model classes this dataset can label: metrics score these only
        self.scored = self.space.scored_classes(self.lut)
        self.colours = ds.colours
        if ds.colours is not None:
            packed = _pack(ds.colours)
            self._order = np.argsort(packed)
            self._sorted = packed[self._order]
        self.unknown_pixels = 0

    def __call__(self, path: str | Path) -> np.ndarray:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DatasetError(f"cannot read label {path}")
        if raw.ndim == 3 and raw.shape[2] == 4:
            raw = raw[:, :, :3]
        if raw.ndim == 2:
            if raw.dtype != np.uint8:
                raise DatasetError(f"label {path}: single-channel labels must be 8-bit ids, got {raw.dtype}")
            return self.lut[raw]
        if self.colours is None:
            raise DatasetError(f"label {path} is a colour image, but this layout has single-channel id labels")
        packed = _pack(raw[:, :, ::-1].reshape(-1, 3))  # OpenCV reads BGR
        pos = np.clip(np.searchsorted(self._sorted, packed), 0, len(self._sorted) - 1)
        known = self._sorted[pos] == packed
        ids = np.where(known, self._order[pos], 255).astype(np.uint8)
        self.unknown_pixels += int((~known).sum())
        return self.lut[ids].reshape(raw.shape[:2])


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def read_pair(frame: Path, label: Path, labels: LabelReader) -> tuple[np.ndarray, np.ndarray]:
    """A frame and its model-id label, which must be the same size (a resized label would be misaligned)."""
    try:
        rgb = read_rgb(frame)
    except FrameReadError as exc:
        raise DatasetError(str(exc)) from None
    lab = labels(label)
    if lab.shape != rgb.shape[:2]:
        raise DatasetError(f"label {label} is {lab.shape[1]}x{lab.shape[0]} but its frame {frame.name} is {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb, lab


def class_frequencies(labels: list[np.ndarray] | object, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class pixel counts, and labelled pixels of the frames each class appears in (void excluded)."""
    pixels = np.zeros(num_classes, np.int64)
    pixels_of_frames_with = np.zeros(num_classes, np.int64)
    for lab in labels:
        counts = np.bincount(lab.ravel(), minlength=256)[:num_classes]
        pixels += counts
        pixels_of_frames_with += (counts > 0) * counts.sum()
    return pixels, pixels_of_frames_with


def class_weights(pixels: np.ndarray, pixels_of_frames_with: np.ndarray, method: str) -> np.ndarray | None:
    """Loss weights against class imbalance, from (share-weighted) class frequencies.

    ``median_freq`` (Eigen & Fergus, used by SegNet on CamVid): freq(c) = pixels of c / pixels of the
    frames where c appears, weight = median(freq) / freq(c). ``enet``: 1 / ln(1.02 + p(c)).
    """
    if method == "none":
        return None
    seen = pixels > 0  # a class no frame shows (a new class, a subset) keeps weight 1, not infinity
    if method == "median_freq":
        freq = pixels / np.maximum(pixels_of_frames_with, 1)
        return np.where(seen, np.median(freq[seen]) / np.maximum(freq, 1e-12), 1.0) if seen.any() else np.ones(len(pixels))
    if method == "enet":
        p = pixels / max(1, pixels.sum())
        return np.where(seen, 1.0 / np.log(1.02 + p), 1.0)
    raise ValueError(f"class weighting must be none, median_freq or enet, got {method!r}")
