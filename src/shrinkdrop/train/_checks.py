"""Argument checks shared by the training loop, prediction, precision fitting and the stacked
engine."""

from __future__ import annotations

__all__ = ["check_samples", "check_int"]


def check_samples(samples: int) -> int:
    """``samples`` as a positive int (a ValueError naming it otherwise)."""
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ValueError(f"samples has to be a positive integer, but got {samples!r}")
    return int(samples)


def check_int(name: str, value: int, low: int = 1) -> int:
    """``value`` as an int ``>= low`` (a ValueError naming it otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} has to be an integer >= {low}, but got {value!r}")
    return value
