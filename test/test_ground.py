"""Projection onto the ground against a hand-computed camera; the grid against the polygon."""

import math

import cv2
import numpy as np
import pytest

from fcn_perception.ground import CameraModel, GridSpec, GroundGrid, rpy_matrix

F, CX, CY, H = 500.0, 320.0, 240.0, 1.5
PITCH = math.radians(10)  # camera looks 10 degrees down


def camera(d=None):
    k = np.array([[F, 0, CX], [0, F, CY], [0, 0, 1]])
    return CameraModel(k, np.zeros(5) if d is None else np.asarray(d), 640, 480, np.array([0.0, 0.0, H]), rpy_matrix(0.0, PITCH, 0.0))


def analytic_pixel(x, y):
    """Pinhole projection worked by hand for pitch-only rotation (y left, optical x right)."""
    # camera-relative point in base axes, then rotate by -pitch about y into the camera body frame
    px, py, pz = x, y, -H
    bx = math.cos(PITCH) * px - math.sin(PITCH) * pz
    bz = math.sin(PITCH) * px + math.cos(PITCH) * pz
    by = py
    return CX + F * (-by) / bx, CY + F * (-bz) / bx


def test_ground_pixel_lands_within_a_centimetre_at_ten_metres():
    cam = camera()
    for y in (0.0, 2.0, -3.5):
        u, v = analytic_pixel(10.0, y)
        ground, clipped = cam.pixels_to_ground(np.array([[u, v]]), max_range=50.0)
        assert not clipped[0]
        assert np.linalg.norm(ground[0] - [10.0, y]) < 0.01


def test_distortion_is_removed_before_projecting():
    d = [-0.3, 0.1, 0.001, -0.002, 0.0]
    cam = camera(d)
    target = np.array([[12.0, 1.5]])
    px, in_front = cam.ground_to_pixels(target)  # distorted pixel of a known ground point
    assert in_front[0]
    back, _ = cam.pixels_to_ground(px, max_range=50.0)
    assert np.linalg.norm(back[0] - target[0]) < 0.01


def test_points_at_or_above_the_horizon_are_clipped_to_max_range():
    cam = camera()
    horizon_v = CY - F * math.tan(PITCH)
    pixels = np.array([[CX, horizon_v - 50], [CX + 100, horizon_v], [CX, 470.0]])
    ground, clipped = cam.pixels_to_ground(pixels, max_range=30.0)
    assert clipped.tolist() == [True, True, False]
    assert np.linalg.norm(ground[0]) == pytest.approx(30.0)
    assert ground[1][1] < 0  # right of centre in the image -> negative y (REP-103 y left)
    assert 0 < ground[2][0] < 10


def test_degenerate_camera_info_is_refused():
    class Info:
        k = [0.0] * 9
        d = [0.0] * 5
        width, height = 640, 480

    with pytest.raises(ValueError, match="focal"):
        CameraModel.from_camera_info(Info, (0, 0, 1.5), (0, 0, 0))
    Info.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="9 values"):
        CameraModel.from_camera_info(Info, (0, 0, 1.5), (0, 0, 0))


def test_grid_cells_agree_with_the_drivable_mask():
    cam = camera()
    spec = GridSpec(resolution=0.25, x_min=0.0, x_max=30.0, half_width=10.0)
    grid = GroundGrid(cam, spec, max_range=30.0)
    # drivable: a 4 m wide lane from 5 m to 25 m ahead, drawn through the projection of its corners
    corners = np.array([[5.0, 2.0], [25.0, 2.0], [25.0, -2.0], [5.0, -2.0]])
    px, _ = cam.ground_to_pixels(corners)
    mask = np.zeros((480, 640), np.uint8)
    cv2.fillPoly(mask, [np.round(px).astype(np.int32)], 1)
    out = grid.fill(mask)
    assert out.shape == spec.shape and out.dtype == np.int8
    centres = spec.cell_centres().reshape(*spec.shape, 2)
    inside = (centres[..., 0] > 5.5) & (centres[..., 0] < 24.5) & (np.abs(centres[..., 1]) < 1.7)
    assert np.all(out[inside] == 0)
    behind = centres[..., 0] < 2.0  # under the bumper: the camera cannot see it
    assert np.all(out[behind] == -1)
    outside = (np.abs(centres[..., 1]) > 2.5) & (centres[..., 0] > 8) & (centres[..., 0] < 20)
    assert np.all(out[outside & (out != -1)] == 100) and np.any(out[outside] == 100)
