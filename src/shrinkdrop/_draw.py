"""The noise draws behind :mod:`shrinkdrop.functional`: sample groups, the noise check, the
draw of a noise tensor of a given per-example shape (``draw_noise``) and the eval factor. Public
through :mod:`shrinkdrop.functional` (this private module only keeps that module's size down)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from . import _diagnose
from . import noise as _noise
from .errors import EvalNoiseError

# ============================================================================= sample groups
_GROUPS: list[int] = [1]


@contextlib.contextmanager
def sample_groups(S: int) -> Iterator[int]:
    """Treat a leading batch of ``S * B`` rows as ``S`` stacked copies of a batch of ``B``.

    Rows ``s * B .. (s + 1) * B - 1`` are copy ``s`` (sample-major). Per-example noise needs
    nothing special; noise shared across the batch (``share_across_batch=True``) is drawn ``S``
    times, once per group of ``B`` rows, so that ``S`` independent noise draws of a model run in
    one batched forward pass (the S-sample MC / marginal-MAP objectives).

    Example:
        >>> import torch, shrinkdrop as sd
        >>> layer = sd.nn.UnitNoise(sd.noise.Bernoulli(0.5), share_across_batch=True)
        >>> x = torch.ones(4, 3).repeat(2, 1)          # S = 2 copies of a batch of B = 4
        >>> with sd.nn.sample_groups(2):
        ...     y = layer(x)                             # rows 0-3 share noise, rows 4-7 share
    """
    if isinstance(S, bool) or not isinstance(S, int) or S < 1:
        raise ValueError(f"sample_groups: S has to be a positive int, but got {S!r}")
    _GROUPS.append(S)
    try:
        yield S
    finally:
        _GROUPS.pop()


def current_sample_groups() -> int:
    """The ``S`` of the innermost :func:`sample_groups` block (1 outside any)."""
    return _GROUPS[-1]


# ============================================================================= noise draws
def check_noise(noise: object, name: str = "noise") -> _noise.NoiseDistribution:
    """Check that ``noise`` is a scalar-parameter noise family; return it."""
    if not isinstance(noise, _noise.NoiseDistribution):
        raise TypeError(
            f"{name} has to be a shrinkdrop.noise family such as Bernoulli(keep=0.9) or "
            f"Gaussian(mean=1, std=0.3), but got {type(noise).__name__} ({noise!r})"
        )
    if noise.batch_shape:
        raise ValueError(
            f"{name} has to have scalar parameters (the structure comes from the layer), but "
            f"{noise!r} has batch_shape {tuple(noise.batch_shape)}"
        )
    return noise


def draw_noise(
    noise: _noise.NoiseDistribution,
    shape: Sequence[int],
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw a noise tensor of per-example ``shape`` ``(N, ...)``.

    With ``share_across_batch=True`` one draw of ``shape[1:]`` is shared by all ``N`` rows (the
    result has a leading 1, broadcasting against the batch), or, inside :func:`sample_groups`
    ``(S)``, one draw per group of ``N / S`` rows (the result then has ``N`` rows). The values
    come from the family's own fast draw (``NoiseDistribution._fast_draw``, docs/layers.md
    "Adding a noise family"); this function checks the law and lays out the shape.

    Args:
        noise: a family from :mod:`shrinkdrop.noise` with scalar parameters.
        shape: the per-example noise shape, leading dimension the batch size ``N``.
        share_across_batch: one draw per forward pass (per sample group) instead of per example.
        normalize: divide by ``E[xi]`` so the noise has mean 1 (default True).
        generator: a :class:`torch.Generator` for the draws (default: torch's global one).
        dtype, device: of the result (default float32 / CPU).
    """
    check_noise(noise)
    if normalize:
        noise.normalizing_mean("draw_noise")
    dtype = dtype or torch.get_default_dtype()
    if generator is not None and torch.compiler.is_compiling():
        # torch.compile cannot trace a torch.Generator: the draw runs eagerly (a graph break;
        # fullgraph=True refuses it, naming this function)
        return _draw_noise_with_generator_not_compilable(
            noise, shape, share_across_batch=share_across_batch, normalize=normalize,
            generator=generator, dtype=dtype, device=device)
    if dtype in _LOW_PRECISION:
        # float16 / bfloat16: drawn in float32 and rounded once, so the law is the float32 law
        # to the narrow type's precision (uniforms drawn in bfloat16 have 8 bits, a bias of
        # 2^-9 in their mean; the CPU gamma kernel has no such form)
        return draw_noise(noise, shape, share_across_batch=share_across_batch,
                          normalize=normalize, generator=generator, dtype=torch.float32,
                          device=device).to(dtype)
    kw = dict(normalize=normalize, generator=generator, dtype=dtype, device=device)
    try:
        shape = tuple(int(s) for s in shape)
        return _layout(noise, shape, share_across_batch, kw)
    except (TypeError, ValueError, RuntimeError) as e:
        _diagnose.draw_args(shape, dtype, e)  # on the failure path only
        raise


def _layout(noise: _noise.NoiseDistribution, shape: tuple[int, ...], share_across_batch: bool,
            kw: dict) -> Tensor:
    """The draw of :func:`draw_noise` laid out for ``share_across_batch`` / sample groups."""
    if not share_across_batch:
        return noise._fast_draw(shape, **kw)
    S = _GROUPS[-1]
    N = shape[0]
    if S == 1:
        return noise._fast_draw((1,) + shape[1:], **kw)
    if N % S:
        raise ValueError(
            f"sample_groups({S}): the batch size has to be a multiple of {S}, but got {N}"
        )
    xi = noise._fast_draw((S,) + shape[1:], **kw)
    return xi.repeat_interleave(N // S, dim=0)


_draw_noise_with_generator_not_compilable = torch.compiler.disable(
    draw_noise, reason="torch.compile cannot trace a torch.Generator: a shrinkdrop layer built "
    "with generator= draws eagerly (a graph break); leave generator=None and seed torch's global "
    "generator (torch.manual_seed) to compile the draw into the graph")

#: the dtypes drawn in float32 and rounded (:func:`draw_noise`)
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _draw_into(noise: _noise.NoiseDistribution, out: Tensor, *, normalize: bool = True,
               generator: torch.Generator | None = None) -> Tensor:
    """:func:`draw_noise` (per example, not shared) written into the contiguous tensor ``out``
    (its shape, dtype and device): lets a caller fill slices of one buffer without a copy."""
    check_noise(noise)
    if normalize:
        noise.normalizing_mean("draw_noise")
    if not out.is_contiguous():
        raise ValueError("out has to be contiguous")
    if out.dtype in _LOW_PRECISION:
        return out.copy_(draw_noise(noise, out.shape, normalize=normalize, generator=generator,
                                    dtype=out.dtype, device=out.device))
    return noise._fast_draw(tuple(out.shape), normalize=normalize, generator=generator,
                            dtype=out.dtype, device=out.device, out=out)


def _eval_factor(noise: _noise.NoiseDistribution, normalize: bool, what: str) -> float:
    """The deterministic factor E[xi] applied in eval (1 when normalised)."""
    if normalize:
        noise.normalizing_mean(what)
        return 1.0
    mean = noise.scalar_mean
    if not math.isfinite(mean):
        raise EvalNoiseError(
            f"{what}: {noise!r} has infinite mean, so eval() with normalize=False cannot apply the "
            "weight-scaling rule x * E[xi] (it would be inf); predict by Monte Carlo with the "
            "noise on: `with shrinkdrop.mc_mode(model): ...` and average several forward passes"
        )
    return mean
