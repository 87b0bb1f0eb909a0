"""Argument checks shared by the whole package.

Every check raises :class:`ValueError` (or :class:`TypeError` for a wrong type) with a message
that names the argument, what was expected and what came, in the style of ``torch.nn.Dropout``:
``"keep has to be in (0, 1], but got 1.5"``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, TypeVar

import torch

_E = TypeVar("_E", bound=enum.Enum)

__all__ = [
    "as_param",
    "check_choice",
    "check_finite",
    "check_int",
    "check_positive",
    "check_probability",
    "describe",
    "positive_float",
    "check_samples",
]


def describe(value: object) -> str:
    """Short printable description of a parameter value (scalar or tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return repr(value.item())
        return f"a tensor of shape {tuple(value.shape)} containing {value.flatten()[:6].tolist()}"
    return repr(value)


def as_param(name: str, value: object, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert ``value`` to a floating tensor, rejecting NaN and non-numbers by name."""
    if isinstance(value, bool) or not isinstance(value, (int, float, torch.Tensor)):
        try:
            import numpy as np

            if isinstance(value, (np.ndarray, np.floating, np.integer)):
                value = torch.as_tensor(value)
            else:
                raise TypeError
        except TypeError:
            raise TypeError(
                f"{name} has to be a number or a tensor, but got {type(value).__name__}"
            ) from None
    t = torch.as_tensor(value)
    if not t.is_floating_point():
        t = t.to(dtype or torch.get_default_dtype())
    elif dtype is not None:
        t = t.to(dtype)
    if torch.isnan(t).any():
        raise ValueError(f"{name} has to be a number, but got NaN ({describe(value)})")
    return t


def check_finite(name: str, value: object) -> torch.Tensor:
    """``value`` as a tensor (:func:`as_param`), checked finite (no infinity, no NaN)."""
    t = as_param(name, value)
    if torch.isinf(t).any():
        raise ValueError(f"{name} has to be finite, but got {describe(value)}")
    return t


def check_positive(name: str, value: object, allow_inf: bool = False) -> torch.Tensor:
    """``value`` as a tensor (:func:`as_param`), checked positive (and finite unless
    ``allow_inf``)."""
    t = as_param(name, value)
    bad = t <= 0
    if not allow_inf:
        bad = bad | torch.isinf(t)
    if bad.any():
        what = "positive" if allow_inf else "positive and finite"
        raise ValueError(f"{name} has to be {what}, but got {describe(value)}")
    return t


def positive_float(name: str, value: object) -> float:
    """``value`` as a Python float after :func:`check_positive` (positive, finite, not NaN)."""
    t = check_positive(name, value)
    if t.numel() != 1:
        raise ValueError(f"{name} has to be a single number, but got {describe(value)}")
    return float(t)


def check_probability(name: str, value: object, low_open: bool = True) -> torch.Tensor:
    """Probability in (0, 1] (``low_open``) or [0, 1]."""
    t = as_param(name, value)
    bad = (t <= 0 if low_open else t < 0) | (t > 1)
    if bad.any():
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{name} has to be in {interval}, but got {describe(value)}")
    return t


def check_choice(name: str, value: Any, choices: type[_E] | Iterable[str]) -> _E | str:
    """Check a string option; Enum classes are converted to their member."""
    if isinstance(choices, type) and issubclass(choices, enum.Enum):
        try:
            return choices(value)
        except ValueError:
            valid = ", ".join(repr(c.value) for c in choices)
            raise ValueError(f"{name} has to be one of {valid}, but got {value!r}") from None
    choices = list(choices)
    if value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} has to be one of {valid}, but got {value!r}")
    return value


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
