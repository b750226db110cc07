"""Argument types the command-line tools share, so every ``--size`` says the same thing when wrong."""

from __future__ import annotations

import argparse


def size_arg(text: str) -> tuple[int, int]:
    """argparse type of every ``--size``: WxH, both > 0, or one line saying so."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise argparse.ArgumentTypeError(f"size must be WxH with both > 0, e.g. 480x360, got {text!r}")
    return int(w), int(h)
