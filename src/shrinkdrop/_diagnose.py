"""Errors of a failed kernel call, named after the argument that caused them.

The functional core calls torch's kernels unchecked (the layers' forward pass is benchmarked
against ``nn.Dropout``) and, only when a kernel raised, asks these functions what was wrong: each
raises a clear error (naming the argument, what was expected and what came) where it finds the
cause, and returns otherwise (the caller then re-raises torch's own error).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

_F = TypeVar("_F", bound=Callable[..., Any])


def on_failure(diagnose: Callable[..., None]) -> Callable[[_F], _F]:
    """Decorate a function so that a RuntimeError from its kernels is passed, with the call's
    arguments, to ``diagnose(err, *args, **kwargs)`` (which raises a clear error where it finds
    the cause) before it propagates: a try block, free when nothing fails."""
    def decorate(f: _F) -> _F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return f(*args, **kwargs)
            except RuntimeError as e:
                diagnose(e, *args, **kwargs)
                raise
        return wrapper  # type: ignore[return-value]
    return decorate


def weight_2d(weight: object) -> None:
    """A ValueError unless ``weight`` is a 2D tensor ``(D_out, D_in)``."""
    if not isinstance(weight, Tensor) or weight.dim() != 2:
        got = f"shape {tuple(weight.shape)}" if isinstance(weight, Tensor) else \
            type(weight).__name__
        raise ValueError(f"weight_noise_linear: weight has to be a 2D tensor (D_out, D_in), "
                         f"but got {got}")


def not_float(x: object, what: str, err: Exception | None = None) -> None:
    """A TypeError if ``x`` is a tensor of a non-floating dtype."""
    if isinstance(x, Tensor) and not x.is_floating_point():
        raise TypeError(f"{what}: x has to be a floating-point tensor, but got dtype {x.dtype}") \
            from err


def not_callable(block: object, err: Exception | None = None) -> None:
    """A TypeError naming ``block`` unless it is callable."""
    if not callable(block):
        raise TypeError("noisy_residual: block has to be a callable (a module or function), "
                        f"but got {type(block).__name__}") from err


def linear_width(err: Exception, x: Tensor, weight: Tensor, *args: Any, **kwargs: Any) -> None:
    """A ValueError if ``x``'s last dimension is not ``weight``'s ``D_in``."""
    if isinstance(x, Tensor) and x.dim() and x.shape[-1] != weight.shape[1]:
        raise ValueError(f"weight_noise_linear: x has to have D_in = {weight.shape[1]} features "
                         f"in its last dimension (weight {tuple(weight.shape)}), but got "
                         f"{x.shape[-1]} (x of shape {tuple(x.shape)})") from err


def conv_channels(err: Exception, x: Tensor, weight: Tensor, *args: Any, groups: int = 1,
                  **kwargs: Any) -> None:
    """A ValueError if ``x`` has not ``in_channels`` channels."""
    if isinstance(weight, Tensor) and weight.dim() == 4 and x.shape[1] != weight.shape[1] * groups:
        raise ValueError(
            f"noisy_conv2d: input has to have {weight.shape[1] * groups} channels (in_channels "
            f"of weight {tuple(weight.shape)}, groups={groups}), but got {x.shape[1]} channels "
            f"(input of shape {tuple(x.shape)})") from err


def draw_args(shape: object, dtype: torch.dtype, err: Exception) -> None:
    """An error naming ``shape`` (not a sequence of non-negative ints) or ``dtype`` (not
    floating)."""
    try:
        dims = [int(s) for s in shape]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"draw_noise: shape has to be a sequence of ints, but got {shape!r}") \
            from err
    if isinstance(shape, str) or any(d < 0 for d in dims):
        raise (TypeError if isinstance(shape, str) else ValueError)(
            f"draw_noise: shape has to be a sequence of non-negative ints, but got {shape!r}"
        ) from err
    if not dtype.is_floating_point:
        raise ValueError(f"draw_noise: dtype has to be a floating-point dtype, but got {dtype}") \
            from err
