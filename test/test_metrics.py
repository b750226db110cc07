import numpy as np
import pytest

from fcn_perception.training.metrics import confusion_matrix, scores


def test_confusion_and_scores_match_hand_computation():
    target = np.array([[0, 0, 1], [1, 2, 11]])  # 11 = void, ignored
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    res = scores(conf, ["a", "b", "c"])
    # IoU a = 1/(2+1-1) = 0.5, b = 2/(2+3-2) = 2/3, c = 1
    assert res["per_class_iou"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0})
    assert res["miou"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert res["pixel_accuracy"] == pytest.approx(4 / 5)


def test_absent_class_is_excluded_from_the_mean():
    conf = confusion_matrix(np.array([0, 0]), np.array([0, 0]), 2)
    res = scores(conf, ["a", "b"])
    assert res["per_class_iou"]["b"] is None and res["miou"] == 1.0


def test_size_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="sizes differ"):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
