"""The heap after start-up (no ROS): freed pages handed back to the OS, and the objects alive then
kept out of the cyclic garbage collector's full scans.

glibc keeps the pages a process frees, and after reading, compiling and warming up a model those
temporaries were 10-25 MB of the node's resident memory (BENCHMARKS.md, start-up). Elsewhere than
glibc :func:`return_freed` does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc


def return_freed() -> None:
    """``malloc_trim(0)``: the free pages of every arena back to the OS."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def freeze_long_lived() -> None:
    """The objects alive now (a started node's: about 70,000 of rclpy, the runtime's bindings and the
    pipeline) left out of the collector's full scans. Each such scan walked them all with the GIL
    held, 22-38 ms, twice in 20 s of a two-camera rig (BENCHMARKS.md, 2026-12-07, eleventh sitting):
    every thread of the node stood still meanwhile. Reference counting still frees them as ever; only
    a cycle among them waits for :func:`thaw`."""
    gc.freeze()


def thaw() -> None:
    """Before the node lets its long-lived objects go (cleanup): the collector may reach them again."""
    gc.unfreeze()
