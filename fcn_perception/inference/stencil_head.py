"""The FCN's last step on the host: the final learned upsampling, the argmax and the confidence,
computed in full only where a pixel's class is in doubt.

Why: at 640x360 the compiled INT8 graph spent 5 of its 22 ms (one thread, AMD EPYC) upsampling 12
class scores 4x and reducing them per pixel, nearly all of it on pixels whose class was never in
doubt. Each pixel of the final transposed convolution (kernel ``2F - 1``, stride ``F``, one kernel
per class, no bias) is a weighted sum of at most 2x2 cells of the score map, and the shipped model's
kernels are positive and within 4 % of bilinear. Where those cells share their top class, the pixels
between them take it (with one positive kernel for every class that is exact); the ``F x F`` pixels
of every other block are computed exactly, as the graph did. On CamVid val this head and the graph
agree on 99.996 % of the pixels.

The confidence (the top class's softmax probability) is exact on the score map's grid (pixels
``F i, F j``) and in the blocks computed in full, and bilinear between grid points inside one class's
region: 1 level of 255 from the graph's on average, 18 levels at the 99th percentile (CamVid val).
"""

from __future__ import annotations

import cv2
import numpy as np

from fcn_perception.inference.mask_scale import enlarge_ids


def phase_taps(kernel: np.ndarray, factor: int) -> np.ndarray:
    """(C, 4, F*F) weights: for each phase (py, px) of an ``F x F`` block, what the block's 2x2 cells
    (i, j), (i, j+1), (i+1, j), (i+1, j+1) contribute. Output ``F i + p`` takes kernel tap ``p + F - 1``
    from cell ``i`` and tap ``p - 1`` from cell ``i + 1`` (none at ``p = 0``)."""
    taps = np.zeros((kernel.shape[0], 2, 2, factor, factor), np.float32)
    for py in range(factor):
        for px in range(factor):
            for ty, ky in enumerate((py + factor - 1, py - 1)):
                for tx, kx in enumerate((px + factor - 1, px - 1)):
                    if ky >= 0 and kx >= 0:
                        taps[:, ty, tx, py, px] = kernel[:, ky, kx]
    return taps.reshape(kernel.shape[0], 4, factor * factor)


def top_class(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, ...) float32 scores -> the class ids and the uint8 confidence, as the exported graph
    computes them (``model.fcn.class_and_confidence``): a running max that keeps the first of equal
    scores, and ``floor(255 / sum_c exp(l_c - max) + 0.5)``."""
    best = logits[0].copy()
    ids = np.zeros(best.shape, np.uint8)
    above = np.empty(best.shape, bool)
    for c in range(1, len(logits)):
        np.greater(logits[c], best, out=above)
        np.copyto(ids, c, where=above)
        np.maximum(best, logits[c], out=best)
    total = cv2.exp((logits - best).reshape(len(logits), -1)).sum(0).reshape(best.shape)
    return ids, np.floor(255.0 / total + 0.5).astype(np.uint8)


def head_for(kernel: np.ndarray, strides, pads_begin, pads_end, output_padding, dilations) -> StencilHead | None:
    """The head of a transposed convolution that is the FCN's final upsampling, read from a runtime's
    graph (OpenVINO's, ONNX's): stride F, kernel 2F-1 (``kernel``: (C, 2F-1, 2F-1), one per class),
    padding and output padding F-1, no dilation. None for any other, which the runtime then runs."""
    f = int(strides[0])
    kernel = np.asarray(kernel, np.float32)
    fits = list(strides) == [f, f] and list(dilations) == [1, 1] and kernel.ndim == 3 and kernel.shape[1:] == (2 * f - 1, 2 * f - 1)
    if not fits or list(pads_begin) != [f - 1] * 2 or list(pads_end) != [f - 1] * 2 or list(output_padding) != [f - 1] * 2:
        return None
    return StencilHead(kernel, f)


class StencilHead:
    """The final ``factor``x upsampling (``kernel``: (C, 2F-1, 2F-1), one per class) with the argmax
    and confidence, from a (C, h, w) float32 score map to (H, W) uint8 ids and confidence."""

    def __init__(self, kernel: np.ndarray, factor: int) -> None:
        kernel = np.asarray(kernel, np.float32)
        if kernel.ndim != 3 or kernel.shape[1:] != (2 * factor - 1, 2 * factor - 1):
            raise ValueError(f"a {factor}x upsampling kernel is (C, {2 * factor - 1}, {2 * factor - 1}), not {kernel.shape}")
        self.factor = factor
        self.taps = phase_taps(kernel, factor)
        self.centre = kernel[:, factor - 1, factor - 1].reshape(-1, 1, 1).copy()  # a grid pixel's one cell
        self._to_grid = np.float32([[1 / factor, 0, 0], [0, 1 / factor, 0]])

    def __call__(self, scores: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """``scores``: (C, h, w) at 1/F of ``size`` (w, h), rounded up."""
        f, (c, h, w) = self.factor, scores.shape
        ids, conf = top_class(scores * self.centre)  # exact at the grid pixels (f i, f j)
        mask = enlarge_ids(ids, (f * w, f * h))  # pixel (y, x) <- cell (y // f, x // f)
        confidence = cv2.warpAffine(conf, self._to_grid, (f * w, f * h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        framed = np.full((h + 1, w + 1), 255, np.uint8)  # beyond the map: no class, so edge blocks are in doubt
        framed[:h, :w] = ids
        corner = framed[:-1, :-1]
        bi, bj = np.nonzero((corner != framed[1:, :-1]) | (corner != framed[:-1, 1:]) | (corner != framed[1:, 1:]))
        if len(bi):
            padded = np.zeros((c, (h + 1) * (w + 1)), np.float32)  # the transposed convolution adds nothing beyond the map
            padded.reshape(c, h + 1, w + 1)[:, :h, :w] = scores
            # each block's cells (i, j), (i, j+1), (i+1, j), (i+1, j+1) in one gather: (C, n, 4)
            cells = np.take(padded, (bi * (w + 1) + bj)[:, None] + np.array([0, 1, w + 1, w + 2]), axis=1)
            block_ids, block_conf = top_class(np.matmul(cells, self.taps))  # (n, F*F) pixels of the blocks in doubt
            # written through (h, F, w, F) views: block (i, j) is [i, :, j, :]
            mask.reshape(h, f, w, f)[bi, :, bj, :] = block_ids.reshape(-1, f, f)
            confidence.reshape(h, f, w, f)[bi, :, bj, :] = block_conf.reshape(-1, f, f)
        width, height = size
        if (height, width) != mask.shape:
            return np.ascontiguousarray(mask[:height, :width]), np.ascontiguousarray(confidence[:height, :width])
        return mask, confidence

    def batch(self, scores: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(N, C, h, w) scores -> (N, H, W) masks and confidences at ``size`` (w, h)."""
        masks, confidences = zip(*(self(s, size) for s in scores), strict=True)
        return np.stack(masks), np.stack(confidences)
