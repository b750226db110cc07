"""Which TensorRT is installed, and whether this backend can run here."""

from __future__ import annotations

#: The majors this package is written against: 10 (weak typing with builder flags and calibrators) and
#: 11 (always strongly typed: BuilderFlag.FP16/INT8 and IInt8Calibrator removed).
TRT_MAJORS = (10, 11)
UNAVAILABLE_REASON = "TensorRT 10.x or 11.x and a CUDA GPU are required"
_LOGGER = None


def trt_major() -> int | None:
    """The installed TensorRT's major version, None where it is not installed."""
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return int(trt.__version__.split(".")[0])


def strongly_typed(major: int | None = None) -> bool:
    """Whether networks are strongly typed (TensorRT 11 and later): the graph fixes the precision."""
    major = trt_major() if major is None else major
    return major is not None and major >= 11


def unavailable_reason() -> str:
    """Why the TensorRT backend cannot run here ("" when it can)."""
    try:
        import tensorrt as trt
    except ImportError:
        return UNAVAILABLE_REASON + " (tensorrt is not installed)"
    major = int(trt.__version__.split(".")[0])
    if major not in TRT_MAJORS:
        return f"TensorRT {trt.__version__} is installed; this backend is written for TensorRT {' and '.join(f'{m}.x' for m in TRT_MAJORS)}"
    try:
        import torch
    except ImportError:
        return UNAVAILABLE_REASON + " (torch with CUDA holds the buffers)"
    return "" if torch.cuda.is_available() else UNAVAILABLE_REASON + " (no CUDA device)"


def available() -> bool:
    return not unavailable_reason()


def logger():
    """One TensorRT logger for the process (builder, parser and runtime share it)."""
    global _LOGGER
    if _LOGGER is None:
        import tensorrt as trt

        _LOGGER = trt.Logger(trt.Logger.WARNING)
    return _LOGGER
