"""Class list and colours of the label set the shipped models predict (CamVid, 11 classes + void)."""

from __future__ import annotations

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

# Colours (RGB) of the original CamVid legend, so overlays read like the dataset's own figures.
_CAMVID_RGB = np.array(
    [
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
        (0, 0, 0),
    ],
    dtype=np.uint8,
)


def palette_bgr(num_classes: int = len(CAMVID_CLASSES)) -> np.ndarray:
    """A (256, 3) BGR lookup table: OpenCV draws in BGR and a full table makes any id safe to index."""
    lut = np.zeros((256, 3), np.uint8)
    lut[: len(_CAMVID_RGB)] = _CAMVID_RGB[:, ::-1]
    if num_classes > len(_CAMVID_RGB):  # other label sets: deterministic distinct-ish colours
        rng = np.random.default_rng(0)
        lut[len(_CAMVID_RGB) : num_classes] = rng.integers(0, 255, (num_classes - len(_CAMVID_RGB), 3))
    return lut
