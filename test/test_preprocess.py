"""The one normalisation training and inference share: OpenCV's one-pass blob equals the formula."""

import cv2
import numpy as np
import pytest

from fcn_perception.inference.preprocess import preprocess_rgb

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


CASES = [((361, 479, 3), (480, 360)), ((720, 1280, 3), (640, 360)), ((100, 200, 3), (224, 96)), ((360, 480, 3), (480, 360))]


@pytest.mark.parametrize(("shape", "size"), CASES)
def test_preprocess_is_resize_then_per_channel_normalisation_in_nchw(shape, size):
    rgb = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)[:, ::-1]  # not contiguous
    x = preprocess_rgb(rgb, size, MEAN, STD)
    r = np.ascontiguousarray(rgb)
    if shape[:2] != size[::-1]:
        r = cv2.resize(r, size, interpolation=cv2.INTER_AREA if shape[0] > size[1] else cv2.INTER_LINEAR)
    ref = ((r.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, size[1], size[0]) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.abs(x - ref).max() < 1e-5


def test_preprocess_refuses_what_is_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess_rgb(np.zeros((4, 4), np.uint8), (4, 4), MEAN, STD)
