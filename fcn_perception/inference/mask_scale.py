"""A mask worked at the network's size that stands for the camera's (no ROS).

The network sees a 1280x720 camera at 640x360; the camera-sized mask is only the nearest enlargement
of the network's. Everything that reads the mask pixel by pixel — the drivable polygons, the lane
points, the ground grid, the fused grid — reads the small one and says its answer in the camera's
pixels, a quarter of the work at that size; only the outputs that send every pixel (the mask, its
PNG twin, the confidence image, the overlay) enlarge it, once. A lookup through :meth:`MaskScale.flat_index`
reads exactly the pixel the enlargement would have put there, so the grids are the same cell for cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

#: an unsigned word of k bytes, for a k-fold enlargement of a uint8 image (see :func:`enlarge_ids`)
_WORDS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def enlarge_ids(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A uint8 (H, W) image (class ids) at ``size`` (w, h) by its nearest pixels, as ``cv2.resize``
    with INTER_NEAREST enlarges it. Why not that alone: at an exact 2x, 4x or 8x (a 1280x720 camera's
    640x360 mask, the network's scores at 1/4) each pixel becomes one k-byte word of k copies and each
    row k rows, the same pixels in a tenth of OpenCV's time (0.03 against 0.35 ms at 1280x720 here)."""
    h, w = image.shape[:2]
    k = size[0] // w if w else 0
    word = _WORDS.get(k)
    if word is None or image.ndim != 2 or image.dtype != np.uint8 or tuple(size) != (k * w, k * h):
        return cv2.resize(image, tuple(size), interpolation=cv2.INTER_NEAREST)
    spread = image.astype(word)
    spread *= word(int("01" * k, 16))  # 0x0101...: byte b into each of the word's k bytes
    return np.repeat(spread, k, axis=0).view(np.uint8)


def nearest_sources(n_work: int, n_camera: int) -> np.ndarray:
    """For each of ``n_camera`` positions, the work position OpenCV's nearest enlargement reads
    (asked of ``cv2.resize`` itself, so it is its rounding, whatever the ratio)."""
    ramp = np.arange(n_work, dtype=np.float32)[None, :]
    return cv2.resize(ramp, (n_camera, 1), interpolation=cv2.INTER_NEAREST)[0].astype(np.int64)


@dataclass(frozen=True)
class MaskScale:
    """The camera's size and the size a mask was worked at, both (width, height)."""

    camera: tuple[int, int]
    work: tuple[int, int]

    @classmethod
    def of(cls, image: np.ndarray, size: tuple[int, int] | None = None) -> MaskScale:
        """The scale of a work ``image`` standing for a ``size`` (w, h) camera (None: its own size)."""
        work = (image.shape[1], image.shape[0])
        return cls(tuple(size) if size else work, work)

    @property
    def identity(self) -> bool:
        return self.camera == self.work

    @property
    def factors(self) -> tuple[float, float]:
        """Camera pixels per work pixel, along x and y."""
        return self.camera[0] / self.work[0], self.camera[1] / self.work[1]

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) work pixel coordinates (x, y) -> the camera's; a pixel's centre goes to the centre
        of the block of camera pixels it stands for."""
        if self.identity:
            return points
        sx, sy = self.factors
        return (np.asarray(points, np.float64) + 0.5) * (sx, sy) - 0.5

    def to_work(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) camera pixel coordinates -> (N, 2) int64 indices (x, y) of the work pixel each lies
        in (at the identity: the nearest pixel), inside the image."""
        pts = (np.asarray(points, np.float64) + 0.5) / self.factors
        return np.clip(np.floor(pts), 0, np.array(self.work) - 1).astype(np.int64)

    @cached_property
    def _sources(self) -> tuple[np.ndarray, np.ndarray]:
        return nearest_sources(self.work[0], self.camera[0]), nearest_sources(self.work[1], self.camera[1])

    def flat_index(self, camera_index: np.ndarray) -> np.ndarray:
        """Flat indices into a camera-sized image -> flat indices into the work image, reading the
        pixel the nearest enlargement would have copied there."""
        if self.identity:
            return camera_index
        cols, rows = self._sources
        v, u = np.divmod(camera_index, self.camera[0])
        return rows[v] * self.work[0] + cols[u]

    def lift(self, image: np.ndarray | None, linear: bool = False) -> np.ndarray | None:
        """The work image at the camera's size: nearest for class ids, ``linear`` for smooth values."""
        if image is None or self.identity:
            return image
        return cv2.resize(image, self.camera, interpolation=cv2.INTER_LINEAR) if linear else enlarge_ids(image, self.camera)


class WorkIndex:
    """Flat pixel indices into a camera-sized image, and the same indices into each smaller work
    image they are asked for (computed once per size): what the grids' lookups read per frame."""

    def __init__(self, camera: tuple[int, int], index: np.ndarray) -> None:
        self.camera = camera
        self._by_shape = {(camera[1], camera[0]): index}

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        """The indices into a mask of ``shape`` (h, w), the camera's or smaller."""
        key = (shape[0], shape[1])
        index = self._by_shape.get(key)
        if index is None:
            camera_index = self._by_shape[(self.camera[1], self.camera[0])]
            index = self._by_shape[key] = MaskScale(self.camera, (key[1], key[0])).flat_index(camera_index)
        return index
