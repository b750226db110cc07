"""Class list and colours of the label set the shipped models predict (CamVid, 11 classes + void)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
#: Training/eval label id of pixels that count nowhere (void, unknown colours, padding): ignored by
#: the loss and by every metric. 255, not CamVid's own 11, so a model may have any number of classes.
VOID_ID = 255

# Colours (RGB) of the original CamVid legend, so overlays read like the dataset's own figures;
# LaneMarking in a yellow no CamVid class uses, so painted lines stand out on the Road purple.
CLASS_RGB: dict[str, tuple[int, int, int]] = {
    "Sky": (128, 128, 128),
    "Building": (128, 0, 0),
    "Pole": (192, 192, 128),
    "Road": (128, 64, 128),
    "Pavement": (60, 40, 222),
    "Tree": (128, 128, 0),
    "SignSymbol": (192, 128, 128),
    "Fence": (64, 64, 128),
    "Car": (64, 0, 128),
    "Pedestrian": (64, 64, 0),
    "Bicyclist": (0, 128, 192),
    "LaneMarking": (255, 215, 0),
}


def palette_bgr(classes: int | Sequence[str] = CAMVID_CLASSES) -> np.ndarray:
    """A (256, 3) BGR lookup table: OpenCV draws in BGR and a full table makes any id safe to index.
    Known class names get their legend colour; other label sets (or a bare count) deterministic
    distinct-ish colours; ids past the classes are black."""
    names = list(CAMVID_CLASSES[:classes]) + [""] * max(0, classes - len(CAMVID_CLASSES)) if isinstance(classes, int) else list(classes)
    rng = np.random.default_rng(0)
    lut = np.zeros((256, 3), np.uint8)
    for i, name in enumerate(names):
        rgb = CLASS_RGB.get(name)
        lut[i] = rgb[::-1] if rgb is not None else rng.integers(0, 255, 3)
    return lut
