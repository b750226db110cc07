"""Label ids that say "one of these classes": partial labels for data coarser than the model.

CamVid's SegNet labels and Cityscapes' road include the painted lane markings, so a Road pixel there
means "Road or LaneMarking". Training it as Road would teach "no lane here" on 3,000 frames for every
one that shows lanes. A class map entry ``Road: [Road, LaneMarking]`` makes such pixels a *set*
target: the loss takes the summed probability of the set (a partial label), and metrics count a
prediction of any member as correct, scored as the first member.

Set targets are label ids after the model's classes (``num_classes + k``), below ``VOID_ID``, so
labels stay one uint8 image. One :class:`LabelSpace` is shared by every dataset of a run, so an id
means the same set in each.
"""

from __future__ import annotations

import numpy as np

from fcn_perception.model.classes import VOID_ID


class LabelSpace:
    """The model's classes plus the sets that class maps named, as uint8 label ids."""

    def __init__(self, classes: list[str] | tuple[str, ...]) -> None:
        self.classes = tuple(classes)
        self.sets: list[tuple[int, ...]] = []  # member ids of set id num_classes + k

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def target_id(self, names: list[str]) -> int:
        """Label id of one class, or of the set of several (registered on first use)."""
        members = tuple(dict.fromkeys(self.classes.index(n) for n in names))
        if len(members) == 1:
            return members[0]
        if members not in self.sets:
            if self.num_classes + len(self.sets) >= VOID_ID:
                raise ValueError(f"too many class sets for uint8 labels ({len(self.sets)})")
            self.sets.append(members)
        return self.num_classes + self.sets.index(members)

    def membership(self) -> np.ndarray:
        """(num_classes + sets, num_classes) bool: row t marks the classes label id t allows."""
        m = np.eye(self.num_classes, dtype=bool)
        rows = [np.isin(np.arange(self.num_classes), s) for s in self.sets]
        return np.vstack([m, *rows]) if rows else m

    def scored_lut(self) -> np.ndarray:
        """(256,) uint8: label id -> the class it is scored (and counted) as; sets -> first member."""
        lut = np.arange(256, dtype=np.uint8)
        lut[self.num_classes :] = VOID_ID
        for k, s in enumerate(self.sets):
            lut[self.num_classes + k] = s[0]
        return lut

    def resolve(self, pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prediction and target for a confusion matrix: where the target is a set and the prediction
        one of its members, both become the first member (correct); elsewhere a set target is its
        first member, so a wrong prediction counts against it."""
        if not self.sets:
            return pred, target
        pred = np.asarray(pred).copy()
        target = np.asarray(target)
        member = self.membership()
        is_set = (target >= self.num_classes) & (target != VOID_ID)
        if is_set.any():
            t = target[is_set].astype(np.int64)
            p = np.clip(pred[is_set].astype(np.int64), 0, self.num_classes - 1)
            first = self.scored_lut()[t]
            ok = member[t, p]
            pred[is_set] = np.where(ok, first, pred[is_set])
        return pred, self.scored_lut()[target]

    def scored_classes(self, lut: np.ndarray) -> list[int]:
        """Classes a dataset's id table can label (alone or first of a set): the only ones whose IoU
        means something on it; another class's column would hold stray predictions only."""
        return sorted(set(self.scored_lut()[lut].tolist()) - {VOID_ID})
