"""A camera's coarsest class scores, reused by its next frames (Shelhamer et al.'s clockwork FCN).

Why: the FCN's stride-32 path (the trunk's last five blocks and its 1280-wide head, 1.38 of the
network's 3.68 GFLOP at 640x360) sees each cell of the input as a 32x32 patch, and 33-67 ms of
driving moves the scene by under a cell. A frame that takes the stride-32 scores of its camera's
frame at most ``max_age_s`` earlier runs only the layers of the finer strides: 25 against 34 ms on
one thread at 640x360 (OpenVINO INT8, AMD EPYC, a slow hour; BENCHMARKS.md, fourteenth sitting). The
finer strides (16, 8, 4) are the frame's own, so edges, thin things and lane paint are where they
are now; reusing the stride-16 scores too cost 2.9 mIoU, so they are not.

What it costs (``tools/coarse_reuse_study.py``), on the labelled frames this repository has in
sequence (CamVid val and camvid_lanes val, 0016E5 at 15 Hz), every frame taking the stride-32
scores of the frame 67 ms before it: CamVid val 74.20 -> 74.18 mIoU, camvid_lanes val 72.11 ->
72.25 (LaneMarking 53.3 -> 53.4); 133 ms before: 73.92 and 71.92. At 30 Hz and the default 70 ms,
every third frame computes its own and the two after it take scores 33 and 67 ms old.

The age is the frames' stamps, not the clock: a replay reuses the same way at any replay speed, and
a stamp that goes back (a bag looped, a clock reset), a gap or a new frame size computes anew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CoarseScores:
    """The last stride-32 scores one camera's frames computed, with the frame's stamp and the
    backend that made them (scores of one model or one size are no use to another)."""

    scores: np.ndarray | None = None
    stamp_s: float = 0.0
    owner: object = None
    reused: int = 0  # frames that took the kept scores
    computed: int = 0  # frames that computed their own (diagnostics: how often the clock ticks)

    def usable(self, owner: object, stamp_s: float | None, max_age_s: float) -> np.ndarray | None:
        """The kept scores for a frame of ``owner`` at ``stamp_s``, if they are at most ``max_age_s``
        older than it; None: the frame computes its own."""
        if self.scores is None or owner is not self.owner or stamp_s is None:
            return None
        age = stamp_s - self.stamp_s
        return self.scores if 0.0 < age <= max_age_s else None

    def share(self) -> str:
        """``reused/inferred``: the frames that took kept scores, of the frames the network ran."""
        return f"{self.reused}/{self.reused + self.computed}"

    def keep(self, owner: object, stamp_s: float | None, scores: np.ndarray | None) -> None:
        """A frame's own scores (None: it reused, nothing to keep)."""
        if scores is None:
            self.reused += 1
            return
        self.computed += 1
        if stamp_s is not None:
            self.scores, self.stamp_s, self.owner = scores, stamp_s, owner
