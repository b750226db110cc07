"""Every encoding cameras send decodes to the reference pixels; every malformation is named."""

import importlib.util
import sys

import cv2
import numpy as np
import pytest

from fcn_perception.bags.bag_io import compressed_image, raw_image
from fcn_perception.scene.image_codec import BadFrame, camera_size, decode, frame_size, reduction_for


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    """Blocks of flat colour: chroma subsampling and Bayer demosaicing are exact away from edges."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(blocks, np.ones((8, 8, 1), np.uint8)))  # 48x64


def interior(img: np.ndarray) -> np.ndarray:
    """Pixels at least 2 away from any block edge."""
    keep = np.zeros(img.shape[:2], bool)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            keep[y, x] = 2 <= y % 8 <= 5 and 2 <= x % 8 <= 5
    return img[keep]


def _uyvy(rgb: np.ndarray, yuy2: bool) -> np.ndarray:
    # BT.601 limited range, the convention of ROS yuv422 and of OpenCV's YUV422 decoders
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = np.round(16 + 0.257 * r + 0.504 * g + 0.098 * b).astype(np.int32)
    u = np.round(128 - 0.148 * r - 0.291 * g + 0.439 * b).astype(np.int32)
    v = np.round(128 + 0.439 * r - 0.368 * g - 0.071 * b).astype(np.int32)
    u2 = ((u[:, 0::2] + u[:, 1::2]) // 2).astype(np.uint8)
    v2 = ((v[:, 0::2] + v[:, 1::2]) // 2).astype(np.uint8)
    out = np.zeros((rgb.shape[0], rgb.shape[1] // 2, 4), np.uint8)
    if yuy2:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = y[:, 0::2], u2, y[:, 1::2], v2
    else:
        out[..., 0], out[..., 1], out[..., 2], out[..., 3] = u2, y[:, 0::2], v2, y[:, 1::2]
    return out.reshape(rgb.shape[0], rgb.shape[1], 2)


def _bayer(rgb: np.ndarray, pattern: str) -> np.ndarray:
    chan = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(rgb.shape[:2], np.uint8)
    for i, c in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, chan[c]]
    return out


def _raw(array, encoding, **kw):
    msg = raw_image(0, "cam", array, encoding)
    for k, v in kw.items():
        setattr(msg, k, v)
    return msg


@pytest.mark.parametrize(
    ("encoding", "make", "tol"),
    [
        ("rgb8", lambda im: im, 0),
        ("bgr8", lambda im: im[..., ::-1], 0),
        ("rgba8", lambda im: np.dstack([im, np.full(im.shape[:2], 7, np.uint8)]), 0),
        ("bgra8", lambda im: np.dstack([im[..., ::-1], np.full(im.shape[:2], 7, np.uint8)]), 0),
        ("yuv422", lambda im: _uyvy(im, yuy2=False), 3),
        ("yuv422_yuy2", lambda im: _uyvy(im, yuy2=True), 3),
        ("bayer_rggb8", lambda im: _bayer(im, "rggb"), 0),
        ("bayer_bggr8", lambda im: _bayer(im, "bggr"), 0),
        ("bayer_gbrg8", lambda im: _bayer(im, "gbrg"), 0),
        ("bayer_grbg8", lambda im: _bayer(im, "grbg"), 0),
    ],
)
def test_colour_encodings_decode_to_reference(rgb, encoding, make, tol):
    out = decode(_raw(np.ascontiguousarray(make(rgb)), encoding))
    assert out.shape == rgb.shape and out.dtype == np.uint8
    diff = np.abs(interior(out).astype(int) - interior(rgb).astype(int))
    assert diff.max() <= tol, f"{encoding}: max difference {diff.max()}"


def test_mono_encodings_replicate_grey(rgb):
    grey = rgb[..., 1].copy()
    out = decode(_raw(grey, "mono8"))
    assert np.array_equal(out, np.dstack([grey] * 3))
    grey16 = grey.astype(np.uint16) * 257
    assert np.array_equal(decode(_raw(grey16, "mono16")), np.dstack([grey] * 3))
    big = _raw(grey16.byteswap(), "mono16", is_bigendian=1)
    assert np.array_equal(decode(big), np.dstack([grey] * 3))


def test_padded_rows_are_honoured(rgb):
    padded = np.zeros((rgb.shape[0], rgb.shape[1] * 3 + 16), np.uint8)
    padded[:, : rgb.shape[1] * 3] = rgb.reshape(rgb.shape[0], -1)
    msg = _raw(padded, "rgb8", width=rgb.shape[1])
    assert np.array_equal(decode(msg), rgb)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_decode(rgb, ext):
    _, buf = cv2.imencode(ext, rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 100] if ext == ".jpg" else [])
    out = decode(compressed_image(0, "cam", buf.tobytes(), "jpeg" if ext == ".jpg" else "png"))
    tol = 0 if ext == ".png" else 12
    assert np.abs(interior(out).astype(int) - interior(rgb).astype(int)).max() <= tol


def _bad_cases(rgb):
    _, jpg = cv2.imencode(".jpg", rgb)
    _, png = cv2.imencode(".png", rgb)
    jpg, png = jpg.tobytes(), png.tobytes()
    good = _raw(rgb, "rgb8")
    return {
        "zero_size": _raw(rgb, "rgb8", width=0, height=0, step=0, data=np.zeros(0, np.uint8)),
        "bad_step": _raw(rgb, "rgb8", step=rgb.shape[1] * 3 - 1),
        "bad_data_size (short)": _raw(rgb, "rgb8", data=good.data[:-5]),
        "bad_data_size (long)": _raw(rgb, "rgb8", data=np.concatenate([good.data, np.zeros(9, np.uint8)])),
        "unknown_encoding": _raw(rgb, "hsv8"),
        "unsupported_encoding (float)": _raw(rgb[..., 0].astype(np.float32), "32FC1"),
        "too_large": _raw(np.zeros((3000, 3000), np.uint8), "mono8"),
        "corrupt_compressed (truncated jpeg)": compressed_image(0, "c", jpg[: len(jpg) // 2]),
        "corrupt_compressed (truncated png)": compressed_image(0, "c", png[: len(png) // 2], "png"),
        "corrupt_compressed (garbage)": compressed_image(0, "c", b"\xff\xd8" + bytes(range(200)) + b"\xff\xd9"),
        "empty_data": compressed_image(0, "c", b""),
        "unsupported_format": compressed_image(0, "c", jpg, "16UC1; compressedDepth"),
    }


def test_malformed_frames_raise_badframe_with_reason(rgb):
    for name, msg in _bad_cases(rgb).items():
        with pytest.raises(BadFrame) as info:
            decode(msg, max_pixels=2000 * 2000)
        assert info.value.reason == name.split(" ")[0], f"{name}: got {info.value.reason}: {info.value}"


def test_byte_order_assumption():
    assert sys.byteorder == "little"  # the big-endian case above swaps bytes on this machine


@pytest.mark.skipif(importlib.util.find_spec("cv_bridge") is None, reason="cv_bridge comes with a ROS install, not with the PyPI wheels")
@pytest.mark.parametrize("encoding", ["bgr8", "rgb8", "mono8", "bgra8"])
def test_the_cv_bridge_path_decodes_as_the_rosbags_image_path(encoding):
    from fcn_perception.ros.image_bridge import cv_bridge_converter

    rng = np.random.default_rng(3)
    channels = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4}[encoding]
    array = rng.integers(0, 255, (24, 32, channels) if channels > 1 else (24, 32), dtype=np.uint8)
    msg = raw_image(5, "cam", array, encoding)
    bridge = cv_bridge_converter()
    assert bridge is not None
    assert np.array_equal(decode(msg, convert_raw=bridge), decode(msg))


@pytest.mark.parametrize(
    ("size", "fit", "factor"),
    [((1280, 720), (640, 360), 2), ((1920, 1080), (640, 360), 2), ((2560, 1440), (640, 360), 4), ((480, 360), (480, 360), 1), ((641, 361), (320, 180), 2)],
)
def test_reduction_never_leaves_the_frame_smaller_than_the_network_input(size, fit, factor):
    assert reduction_for(*size, fit) == factor


def test_a_jpeg_decoded_reduced_covers_the_fit_and_keeps_the_camera_size(rgb):
    big = cv2.resize(rgb, (1280, 720), interpolation=cv2.INTER_NEAREST)
    _, buf = cv2.imencode(".jpg", big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    msg = compressed_image(0, "cam", buf.tobytes(), "jpeg")
    small = decode(msg, fit=lambda w, h: (w // 2, h // 2))
    full = decode(msg)
    assert small.shape == (360, 640, 3) and full.shape == (720, 1280, 3)
    assert camera_size(msg, small) == (1280, 720)
    ref = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - ref.astype(int)).mean() < 3  # DCT scaling ~ area averaging
    _, png = cv2.imencode(".png", big[..., ::-1])
    assert decode(compressed_image(0, "cam", png.tobytes(), "png"), fit=lambda w, h: (w // 2, h // 2)).shape == (720, 1280, 3)


def _opencv_rgb(data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flags), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real road frame (the sample drive's first), BGR."""
    from fcn_perception.tools.load import _sample_jpegs

    return cv2.imdecode(np.frombuffer(_sample_jpegs(None)[0], np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.parametrize(
    ("size", "params", "factor"),
    [((640, 480), [], 1), ((1280, 720), [], 2), ((641, 361), [], 2), ((640, 480), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 2), ((640, 480), "grey", 1)],
)
def test_jpegs_decode_through_libjpeg_turbo_to_opencvs_pixels(photo, size, params, factor, monkeypatch):
    from fcn_perception.scene import image_codec
    from fcn_perception.scene.image_codec import _compressed_size, _turbojpeg

    frame = cv2.resize(photo, size)
    if params == "grey":
        frame, params = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), []
    data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90, *params])[1].tobytes()
    assert _turbojpeg(data, _compressed_size(data), factor) is not None  # the fast path took it
    ref = _opencv_rgb(data, {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2}[factor])
    monkeypatch.setattr(image_codec.cv2, "imdecode", lambda *a: pytest.fail("decoded by OpenCV"))
    got = decode(compressed_image(0, "cam", data, "jpeg"), fit=lambda w, h: (-(-w // factor), -(-h // factor)))
    assert got.shape == ref.shape and np.array_equal(got, ref)


def test_a_jpeg_with_extraneous_bytes_a_camera_leaves_is_decoded_as_opencv_does():
    """Many USB cameras end every frame with stray bytes ("2 extraneous bytes before marker 0xd9");
    libjpeg-turbo only warns, and so must the decoder: such a camera's frames are all served."""
    import simplejpeg

    from fcn_perception.scene.image_codec import _compressed_size, _turbojpeg
    from fcn_perception.tools.load import _sample_jpegs

    clean = _sample_jpegs((640, 480))[0]
    stray = clean[:-2] + b"\x00\x00\x00" + clean[-2:]
    with pytest.raises(ValueError, match="extraneous bytes"):
        simplejpeg.decode_jpeg(stray, strict=True)  # the case this test is about
    assert _turbojpeg(stray, _compressed_size(stray), 1) is not None
    assert np.array_equal(decode(compressed_image(0, "cam", stray, "jpeg")), _opencv_rgb(clean))


def test_a_jpeg_with_an_exif_orientation_is_turned_as_opencv_turns_it():
    import struct

    img = np.zeros((48, 64, 3), np.uint8)
    img[:8, :8] = 255  # the top left corner, which a turn of 90 degrees clockwise moves top right
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    tiff = b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
    got = decode(compressed_image(0, "cam", data, "jpeg"))
    assert got.shape == (64, 48, 3)
    assert got[:8, -8:].mean() > 200 and got[:8, :8].mean() < 50


def test_a_frame_s_size_is_read_from_its_message_without_decoding(rgb):
    """What the node compiles its first graph for (ros/first_frame.py): the size a frame declares."""
    big = cv2.resize(rgb, (1280, 720), interpolation=cv2.INTER_NEAREST)
    _, jpeg = cv2.imencode(".jpg", big)
    _, png = cv2.imencode(".png", big)
    assert frame_size(compressed_image(0, "cam", jpeg.tobytes())) == (1280, 720)
    assert frame_size(compressed_image(0, "cam", png.tobytes(), "png")) == (1280, 720)
    assert frame_size(raw_image(0, "cam", big, "rgb8")) == (1280, 720)
    assert frame_size(compressed_image(0, "cam", b"not an image")) is None
    assert frame_size(raw_image(0, "cam", np.zeros((0, 0, 3), np.uint8), "rgb8")) is None
