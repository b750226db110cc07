"""Freed heap pages handed back to the OS (no ROS): glibc keeps the pages a process frees, and after
reading, compiling and warming up a model those temporaries were 10-25 MB of the node's resident
memory (BENCHMARKS.md, start-up). Elsewhere than glibc it does nothing."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util


def return_freed() -> None:
    """``malloc_trim(0)``: the free pages of every arena back to the OS."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
