"""Argument types the command-line tools share, so every ``--size``, count and rate says the same
thing when wrong: one line from argparse and exit 2, before a model loads or a node starts, never a
traceback from deep inside (``load --rate 0`` divided by zero, ``segment --threads -2`` failed in
OpenVINO's compiler)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def size_arg(text: str) -> tuple[int, int]:
    """argparse type of every ``--size``: WxH, both > 0, or one line saying so."""
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise argparse.ArgumentTypeError(f"size must be WxH with both > 0, e.g. 480x360, got {text!r}")
    return int(w), int(h)


def sizes_arg(text: str) -> tuple[tuple[int, int], ...]:
    """argparse type of a list of sizes, ``WxH[,WxH...]``: one per camera of a mixed rig."""
    return tuple(size_arg(part) for part in text.split(","))


def count_arg(least: int = 1) -> Callable[[str], int]:
    """argparse type of a whole number >= ``least`` (frames, cameras, workers, rounds)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def number_arg(least: float = 0.0, most: float | None = None, above: bool = False) -> Callable[[str], float]:
    """argparse type of a finite number >= ``least`` (> with ``above``: a rate) and <= ``most``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        low = value <= least if above else value < least
        if not math.isfinite(value) or low or (most is not None and value > most):
            bounds = f"{'over' if above else 'at least'} {least:g}" + (f" and at most {most:g}" if most is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value

    return parse


def param_arg(name: str) -> Callable[[str], object]:
    """argparse type of a flag that sets a node parameter (``--threads``): the parameter table's
    own type and range, so the command and the node refuse the same values. (The table is imported
    here, not above: the peers study runs in an environment without OpenCV, which the table needs.)"""
    from fcn_perception.params.table import SPECS, check_value

    cast = {"int": int, "double": float}[SPECS[name].type]

    def parse(text: str) -> object:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if cast is int else 'a number'}, got {text!r}") from None
        try:
            check_value(name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return parse
