"""The one normalisation training and inference share: OpenCV's one-pass blob equals the formula."""

import cv2
import numpy as np
import pytest

from fcn_perception.inference.preprocess import preprocess_rgb, resize_rgb

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


CASES = [((361, 479, 3), (480, 360)), ((720, 1280, 3), (640, 360)), ((100, 200, 3), (224, 96)), ((360, 480, 3), (480, 360))]


@pytest.mark.parametrize(("shape", "size"), CASES)
def test_preprocess_is_resize_then_per_channel_normalisation_in_nchw(shape, size):
    rgb = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)[:, ::-1]  # not contiguous
    x = preprocess_rgb(rgb, size, MEAN, STD)
    r = np.ascontiguousarray(rgb)
    if shape[:2] != size[::-1]:
        r = cv2.resize(r, size, interpolation=cv2.INTER_AREA if shape[0] == 2 * size[1] else cv2.INTER_LINEAR)
    ref = ((r.astype(np.float32) / 255 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
    assert x.shape == (1, 3, size[1], size[0]) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.abs(x - ref).max() < 1e-5


def test_preprocess_refuses_what_is_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess_rgb(np.zeros((4, 4), np.uint8), (4, 4), MEAN, STD)


@pytest.mark.parametrize(
    ("camera", "size", "factor"),
    [((640, 480), (480, 360), 1), ((960, 540), (640, 360), 1), ((1920, 1080), (640, 360), 3), ((2047, 1023), (704, 360), 2), ((2560, 1440), (704, 360), 3)],
)
def test_shrinking_is_area_averaging_by_a_whole_factor_then_bilinear(camera, size, factor):
    """OpenCV's area averaging at a ratio that is not whole costs 2-9 ms a frame (BENCHMARKS.md): it is
    kept to whole factors, exact there (1920x1080 -> 640x360 is plain area averaging), and bilinear
    takes what is left, under 2x."""
    rgb = np.random.default_rng(2).integers(0, 256, (camera[1], camera[0], 3), dtype=np.uint8)
    ref = rgb if factor == 1 else cv2.resize(rgb, None, fx=1 / factor, fy=1 / factor, interpolation=cv2.INTER_AREA)
    if ref.shape[:2] != size[::-1]:
        ref = cv2.resize(ref, size, interpolation=cv2.INTER_LINEAR)
    out = resize_rgb(rgb, size)
    assert out.shape == (size[1], size[0], 3)
    assert np.array_equal(out, ref)
    if camera == (1920, 1080):
        assert np.array_equal(out, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
