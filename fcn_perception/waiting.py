"""Waiting for a condition with a deadline: the one polling loop that the tools (demo, load, bench,
the bag player) and the tests wait in."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """True as soon as ``predicate()`` is true; False once ``timeout`` seconds have passed without.
    The predicate is asked once more at the deadline, so a condition met during the last sleep is
    not reported as a timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
