"""Structured multiplicative noise applied to tensors: the structures are the noise *shapes*.

Nalisnick & Smyth, sections 3 and 5. Multiplying a layer's inputs by noise ``xi`` is the expanded
parametrization (EP) of a Gaussian scale-mixture prior on the layer's weights; which weights share a
scale is decided by the shape of the noise tensor (``docs/layers.md``, DESIGN.md section 3):

=====================  ==========================  =================================================
function               noise tensor (per example)  structure (prior)
=====================  ==========================  =================================================
:func:`unit_noise`     ``x.shape`` (N, *, D)       ARD: one scale per input unit (``nn.Dropout``)
:func:`channel_noise`  (N, C, 1, ..., 1)           tied filters after a conv (``nn.Dropout2d``)
:func:`layer_noise`    (N, 1, ..., 1)              ADD outside a block (stochastic depth, "row")
:func:`weight_noise_linear`  (N, D_out, D_in)      DropConnect: one scale per weight
:func:`noisy_residual` (N, 1, ...) and x.shape     ADD / ARD / ARD+ADD inside a residual block
:func:`noisy_conv2d`   (N, F) / (N, C_in, F)       conv: tied filters / tied channels / both
:func:`noisy_lstm`     (N, D) / (N, 4, D)          LSTM inputs, tied / untied gates, once per seq.
=====================  ==========================  =================================================

Sampling is per example by default (every example draws its own noise: the noise is part of the
likelihood, as in dropout) or, with ``share_across_batch=True``, once per forward pass for the
whole batch (the paper's global scales, one draw shared by every example). Inside
:func:`sample_groups` a batch of ``S * B`` rows is ``S`` stacked copies of a batch and shared
noise is drawn once per copy.

Scaling: with ``normalize=True`` (default) the noise is ``xi / E[xi]`` so that evaluation
(``training=False``) is the identity. With ``normalize=False`` the raw noise is applied and
evaluation multiplies by ``E[xi]`` (the weight-scaling rule); a family with infinite mean
(half-Cauchy) then cannot be evaluated deterministically and raises :class:`EvalNoiseError`:
predict by Monte Carlo with the noise on (``shrinkdrop.mc_mode``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import _diagnose
from . import noise as _noise
from ._draw import (  # noqa: F401 - _GROUPS, _draw_into, _LOW_PRECISION: used by the layers
    _GROUPS,
    _LOW_PRECISION,
    _draw_into,
    _eval_factor,
    check_noise,
    current_sample_groups,
    draw_noise,
    sample_groups,
)
from ._lstm import _lstm_kernel, _untied_lstm_layer
from ._validation import check_choice, check_int
from .enums import Tie
from .errors import EvalNoiseError
from .sampling import bernoulli as _sampling_bernoulli

__all__ = [
    "Tie",
    "EvalNoiseError",
    "sample_groups",
    "current_sample_groups",
    "check_noise",
    "draw_noise",
    "unit_noise",
    "channel_noise",
    "layer_noise",
    "weight_noise_linear",
    "noisy_residual",
    "noisy_conv2d",
    "noisy_lstm",
]


def _check_rank(x: Tensor, what: str, min_dim: int, expected: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what}: input has to be a tensor, but got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(
            f"{what}: Expected input of shape {expected} (at least {min_dim}D), but received a "
            f"{x.dim()}D input of shape {tuple(x.shape)}"
        )


#: per-example, mean-normalised Bernoulli noise on CPU tensors of fewer elements than this, drawn
#: from torch's global generator, runs torch's own dropout kernel (one call from C++: at small
#: sizes the per-call cost decides); from this size on our draws (geometric gaps, 31-bit words)
#: are the faster ones (``benchmarks/bench_layers.py``; docs/layers.md "Speed")
TORCH_DROPOUT_MAX = _sampling_bernoulli.TORCH_KERNEL_MAX


def _torch_dropout_path(x: Tensor, noise: _noise.NoiseDistribution, normalize: bool,
                        generator: torch.Generator | None, share_across_batch: bool,
                        what: str, numel: int | None = None) -> bool:
    """Whether per-example, mean-normalised Bernoulli noise drawn from torch's global generator
    goes through torch's own dropout kernels (the same law: every element 0 or ``1 / keep``):
    always on accelerators (fused, faster than drawing ``xi`` and multiplying:
    benchmarks/bench_layers.py --device cuda); on the CPU only for noise of fewer than
    :data:`TORCH_DROPOUT_MAX` elements (``numel``; ``None``: never), where one C++ call beats
    our few Python-level kernels, and always under ``torch.compile`` (it traces)."""
    if (noise._dropout_keep is None or not normalize or generator is not None
            or share_across_batch):
        return False
    if not (x.device.type != "cpu" or (numel is not None and numel < TORCH_DROPOUT_MAX)
            or torch.compiler.is_compiling()):
        return False
    noise.normalizing_mean(what)
    return True


def _scale(x: Tensor, factor: float, inplace: bool = False) -> Tensor:
    if factor == 1.0:
        return x
    return x.mul_(factor) if inplace else x * factor


def _checked_eval(x: Tensor, noise: _noise.NoiseDistribution, training: bool, normalize: bool,
                  what: str, min_dim: int, expected: str, inplace: bool = False) -> Tensor | None:
    """What every activation structure starts with: ``x``'s rank and the noise checked; in eval
    the deterministic output ``x * E[xi]`` (``x`` itself when normalised, as torch's dropout in
    eval), in training ``None`` (the caller draws the noise)."""
    _check_rank(x, what, min_dim, expected)
    check_noise(noise)
    return None if training else _scale(x, _eval_factor(noise, normalize, what), inplace)


def _times_noise(x: Tensor, noise: _noise.NoiseDistribution, shape: tuple[int, ...], *,
                 share_across_batch: bool, normalize: bool,
                 generator: torch.Generator | None, inplace: bool = False) -> Tensor:
    """``x`` times noise of ``shape`` (broadcast against ``x``), drawn in ``x``'s dtype and
    device; ``inplace``: ``x`` multiplied in place and returned (torch's ``inplace=True``)."""
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch, normalize=normalize,
                    generator=generator, dtype=x.dtype, device=x.device)
    return x.mul_(xi) if inplace else x * xi


# ============================================================================= unit / channel
def unit_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """ARD noise: every input unit of every example gets its own scale (section 3, Eq. 8).

    With ``Bernoulli(keep)`` this is ``F.dropout(x, p=1 - keep)``: the same law and scaling, the
    same handling of 0-d and empty inputs, ``keep = 0`` (``p = 1``) gives zeros, and eval (or
    ``keep = 1``) returns ``x`` itself.

    Args:
        x: input ``(N, *, D)``; every leading row is an example (any shape, 0-d included, as
            ``nn.Dropout``: the noise is per element).
        noise: a :mod:`shrinkdrop.noise` family.
        training: apply noise (else the identity, or ``x * E[xi]`` when ``normalize=False``).
        share_across_batch: one draw of shape ``(1, ..., 1, D)`` per forward pass (global ARD
            scales) instead of one per element.
        normalize: noise divided by ``E[xi]`` (default True).
        generator: optional :class:`torch.Generator`.
        inplace: multiply ``x`` in place and return it (torch's ``inplace=True``; ``x`` must not
            be a leaf that requires grad).

    Shape:
        x and output ``(N, *, D)``; noise ``x.shape``, or ``(1, ..., 1, D)`` when shared.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"unit_noise: input has to be a tensor, but got {type(x).__name__}")
    check_noise(noise)
    if not training:
        return _scale(x, _eval_factor(noise, normalize, "unit_noise"), inplace)
    keep = noise._dropout_keep
    if keep is not None:
        if keep == 1.0:
            return x
        # the checks of _torch_dropout_path, inline (the per-call cost at small sizes is what
        # issue 28 measures against nn.Dropout); Bernoulli normalises for every keep
        if (normalize and generator is None and not share_across_batch
                and (x.numel() < TORCH_DROPOUT_MAX or x.device.type != "cpu"
                     or torch.compiler.is_compiling())):
            try:
                if inplace:
                    return torch.dropout_(x, 1.0 - keep, True)
                return torch.dropout(x, 1.0 - keep, True)
            except RuntimeError as e:
                _diagnose.not_float(x, "unit_noise", e)
                raise
    shared = share_across_batch and x.dim() > 1
    if shared:
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    else:
        shape = x.shape
    try:
        return _times_noise(x, noise, shape, share_across_batch=shared, normalize=normalize,
                            generator=generator, inplace=inplace)
    except (RuntimeError, ValueError) as e:
        _diagnose.not_float(x, "unit_noise", e)
        raise


#: ``nn.Dropout1d/2d/3d``'s ranks: spatial dimensions -> (batched rank, unbatched rank or None)
_CHANNEL_RANKS = {1: (3, 2), 2: (4, None), 3: (5, 4)}
_CHANNEL_SHAPES = {1: "(N, C, L) or unbatched (C, L)",
                   2: "(N, C, H, W) (a 3D input is read as (N, C, L), as nn.Dropout2d does)",
                   3: "(N, C, D, H, W) or unbatched (C, D, H, W)"}


def _channel_layout(x: Tensor, spatial_dims: int | None) -> bool:
    """Check ``x``'s rank for :func:`channel_noise`; whether it is unbatched (``(C, *)``)."""
    if spatial_dims is None:
        _check_rank(x, "channel_noise", 3, "(N, C, *) with at least one spatial dimension")
        return False
    _check_rank(x, "channel_noise", 0, "")
    batched, unbatched = _CHANNEL_RANKS[spatial_dims]
    if x.dim() == 3 and spatial_dims == 2:
        warnings.warn(
            "channel_noise(spatial_dims=2): received a 3D input and, as nn.Dropout2d does, "
            "reads it as (N, C, L) (channel-wise 1D noise), not as an unbatched (C, H, W); pass "
            "spatial_dims=1 for 1D inputs, or unsqueeze(0) an unbatched image", stacklevel=3)
        return False
    if x.dim() not in (batched, unbatched):
        raise ValueError(
            f"channel_noise(spatial_dims={spatial_dims}): Expected {unbatched or 3}D or "
            f"{batched}D input {_CHANNEL_SHAPES[spatial_dims]}, but received a {x.dim()}D "
            f"input of shape {tuple(x.shape)}"
        )
    return x.dim() == unbatched


def channel_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    spatial_dims: int | None = None,
    inplace: bool = False,
) -> Tensor:
    """One scale per (example, channel): the tied-filters prior after a conv (section 5.3).

    With ``Bernoulli(keep)`` this is ``nn.Dropout1d/2d/3d(p=1 - keep)``: every channel map of every
    example is either dropped whole or kept and scaled by ``1 / keep``.

    Args:
        x: input ``(N, C, *)`` with at least one spatial dimension (``spatial_dims=None``), or
            as ``nn.Dropout1d/2d/3d`` for ``spatial_dims=1/2/3``: ``(N, C, L)`` or unbatched
            ``(C, L)``; ``(N, C, H, W)`` (a 3D input is read as ``(N, C, L)`` with a warning, as
            torch does); ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``. An unbatched input
            draws one scale per channel.
        noise, training, normalize, generator, inplace: as :func:`unit_noise`.
        share_across_batch: one draw ``(1, C, 1, ...)`` per forward pass.
        spatial_dims: ``None`` (any rank >= 3, batched) or 1, 2, 3 (the ranks of
            ``nn.Dropout1d/2d/3d``; other ranks raise ``ValueError`` where torch warns).

    Shape:
        x and output ``(N, C, *)``; noise ``(N, C, 1, ..., 1)`` (``(1, C, 1, ...)`` when shared).
    """
    if spatial_dims not in (None, 1, 2, 3):
        raise ValueError(f"channel_noise: spatial_dims has to be None, 1, 2 or 3, but got "
                         f"{spatial_dims!r}")
    unbatched = _channel_layout(x, spatial_dims)
    check_noise(noise)
    if not training:
        return _scale(x, _eval_factor(noise, normalize, "channel_noise"), inplace)
    if unbatched:
        y = channel_noise(x.unsqueeze(0), noise, True, share_across_batch=share_across_batch,
                          normalize=normalize, generator=generator, inplace=inplace)
        return x if inplace else y.squeeze(0)
    if noise._dropout_keep == 1.0:
        return x
    if _torch_dropout_path(x, noise, normalize, generator, share_across_batch, "channel_noise"):
        # nn.Dropout1d/2d/3d's kernel
        if inplace:
            return torch.feature_dropout_(x, 1.0 - noise._dropout_keep, True)
        return torch.feature_dropout(x, 1.0 - noise._dropout_keep, True)
    shape = tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
    return _times_noise(x, noise, shape, share_across_batch=share_across_batch,
                        normalize=normalize, generator=generator, inplace=inplace)


def layer_noise(
    x: Tensor,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """One scale per example for the whole tensor: ADD outside a residual block (section 5.1).

    With ``Bernoulli(keep)`` this is torchvision's ``stochastic_depth(x, 1 - keep, "row")``
    (``"batch"`` with ``share_across_batch=True``), applied to a residual branch's output.
    ``inplace``: as :func:`unit_noise`.

    Shape:
        x and output ``(N, *)``; noise ``(N, 1, ..., 1)`` (``(1, ..., 1)`` when shared).
    """
    y = _checked_eval(x, noise, training, normalize, "layer_noise", 1, "(N, *)", inplace)
    if y is not None:
        return y
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return _times_noise(x, noise, shape, share_across_batch=share_across_batch,
                        normalize=normalize, generator=generator, inplace=inplace)


# ============================================================================= DropConnect
@_diagnose.on_failure(_diagnose.linear_width)
def weight_noise_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    share_across_batch: bool = False,
    local_reparameterization: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DropConnect: one scale per weight, ``y_n = x_n (W * xi_n)^T + b`` (section 3).

    Modes, and which are exact:

    * per example (default): every example draws its own ``(D_out, D_in)`` noise, exact; costs
      ``N * D_out * D_in`` memory and a batched matmul.
    * ``share_across_batch=True``: one ``(D_out, D_in)`` draw per forward pass (per sample group),
      exact for the global-scale model; costs one elementwise product with ``W``.
    * ``local_reparameterization=True`` (Gaussian noise only, per example): samples the
      pre-activation ``y_n ~ N(m x_n W^T + b, s^2 (x_n^2) (W^2)^T)`` directly. Exact in
      distribution (the per-example outputs have exactly the law of the per-example mode), at the
      cost of two matmuls; the gradient estimator differs (lower variance).

    The bias is not multiplied by noise.

    Shape:
        x ``(N, *, D_in)``; weight ``(D_out, D_in)``; output ``(N, *, D_out)``; noise
        ``(N, D_out, D_in)`` or ``(1, D_out, D_in)`` when shared.
    """
    _check_rank(x, "weight_noise_linear", 2, "(N, *, D_in)")
    check_noise(noise)
    _diagnose.weight_2d(weight)  # F.linear would take a 1D weight (a matrix-vector product)
    if not training:
        w = _scale(weight, _eval_factor(noise, normalize, "weight_noise_linear"))
        return torch.nn.functional.linear(x, w, bias)
    if local_reparameterization:
        if noise._gaussian_params is None:
            raise ValueError(
                "weight_noise_linear: local_reparameterization needs Gaussian noise (the sum of "
                f"Gaussian-scaled terms is Gaussian), but got {noise!r}"
            )
        if share_across_batch:
            raise ValueError(
                "weight_noise_linear: local_reparameterization samples independent noise per "
                "example and cannot be combined with share_across_batch=True"
            )
        m, s = noise._gaussian_params
        if normalize:
            noise.normalizing_mean("weight_noise_linear")
            m, s = 1.0, s / m
        mu = torch.nn.functional.linear(x, weight if m == 1.0 else weight * m, bias)
        var = torch.nn.functional.linear(x * x, weight * weight)
        eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
        tiny = torch.finfo(var.dtype).tiny
        return mu + var.clamp_min(tiny).sqrt() * (eps * s)
    N = x.shape[0]
    shape = (N,) + tuple(weight.shape)
    xi = draw_noise(noise, shape, share_across_batch=share_across_batch, normalize=normalize,
                    generator=generator, dtype=weight.dtype, device=weight.device)
    if xi.shape[0] == 1:
        return torch.nn.functional.linear(x, weight * xi[0], bias)
    w = weight * xi  # (N, D_out, D_in): one weight matrix per example
    if x.dim() == 2:
        y = torch.bmm(w, x.unsqueeze(-1)).squeeze(-1)
    else:
        y = torch.einsum("n...i,noi->n...o", x, w)
    return y if bias is None else y + bias


# ============================================================================= residual
def noisy_residual(
    h: Tensor,
    block: Callable[[Tensor], Tensor],
    training: bool = True,
    *,
    layer_noise: _noise.NoiseDistribution | None = None,
    unit_noise: _noise.NoiseDistribution | None = None,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Residual block with ADD / ARD / ARD+ADD noise: ``h + block(tau * (h * xi))`` (section 5.1).

    ``tau`` (``layer_noise``) is one scale per example (automatic depth determination); ``xi``
    (``unit_noise``) one per input unit (ARD); both give the joint prior of Eq. 14.

    With Bernoulli ``layer_noise`` and ``block = ReLU(Linear(bias=False))`` (or any positively
    homogeneous block) this is stochastic depth, mode "row": each example gets ``h`` or
    ``h + block(h) / keep``. A block with a bias is not homogeneous (``block(0) = relu(b) != 0``),
    so the equivalence then fails; the paper folds biases into the weights.

    Shape:
        h and output ``(N, *)``; tau ``(N, 1, ..., 1)`` (``(1, ...)`` when shared); xi ``h.shape``
        (``(1, ..., D)`` when shared).
    """
    _check_rank(h, "noisy_residual", 1, "(N, *)")
    if not training:
        factor = 1.0
        for nz in (layer_noise, unit_noise):
            if nz is not None:
                factor *= _eval_factor(check_noise(nz), normalize, "noisy_residual")
        _diagnose.not_callable(block)
        return h + block(_scale(h, factor))
    z = h
    if unit_noise is not None:
        z = _unit_noise(z, unit_noise, True, share_across_batch=share_across_batch,
                        normalize=normalize, generator=generator)
    if layer_noise is not None:
        z = _layer_noise(z, layer_noise, True, share_across_batch=share_across_batch,
                         normalize=normalize, generator=generator)
    try:
        return h + block(z)
    except TypeError as e:
        _diagnose.not_callable(block, e)
        raise



_unit_noise = unit_noise
_layer_noise = layer_noise


# ============================================================================= conv
@_diagnose.on_failure(_diagnose.conv_channels)
def noisy_conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    tie: Tie | str = Tie.FILTER,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] | str = 0,
    dilation: int | tuple[int, int] = 1,
    groups: int = 1,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """2-d convolution with the structured scale priors of section 5.3, sampled per example.

    * ``tie="filter"``: ``tau_f`` per (example, filter) multiplies output map ``f`` (Eq. 23);
      Bernoulli gives ``nn.Dropout2d`` on the conv's output (before the bias).
    * ``tie="channel"``: ``xi_{c,f}`` per (example, input channel, filter):
      ``a_{c,f} = (X_c * W_{c,f}) xi_{c,f}`` (Eq. 22), one per-example weight tensor (a grouped
      convolution over the batch).
    * ``tie="both"``: ``tau_f xi_{c,f}`` (Eq. 25), the same family for both factors.

    The bias is added after the noise (it is not a weight of the prior).

    Shape:
        x ``(N, C_in, H, W)``; weight ``(F, C_in / groups, kH, kW)``; output ``(N, F, H', W')``;
        noise ``(N, F)`` (filter) and ``(N, C_in / groups, F)`` (channel), leading 1 when shared.
    """
    tie = check_choice("tie", tie, Tie)
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = f"a {x.dim()}D input" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"noisy_conv2d: Expected 4D input (N, C_in, H, W), but received {got}")
    check_noise(noise)
    conv = torch.nn.functional.conv2d
    F_out, C_g = weight.shape[:2]
    N = x.shape[0]
    if not training:
        f = _eval_factor(noise, normalize, "noisy_conv2d")
        if tie is Tie.BOTH:
            f = f * f
        return conv(x, _scale(weight, f), bias, stride, padding, dilation, groups)
    kw = dict(share_across_batch=share_across_batch, normalize=normalize, generator=generator,
              dtype=x.dtype, device=x.device)
    if tie is Tie.FILTER:
        y = conv(x, weight, None, stride, padding, dilation, groups)
        tau = draw_noise(noise, (N, F_out), **kw)
        y = y * tau[:, :, None, None]
    else:
        xi = draw_noise(noise, (N, C_g, F_out), **kw)  # (N or 1, C/g, F)
        xi_w = xi.transpose(1, 2)[..., None, None]  # (N or 1, F, C/g, 1, 1)
        if xi.shape[0] == 1:
            y = conv(x, weight * xi_w[0], None, stride, padding, dilation, groups)
        else:
            # per-example weights: fold the batch into the groups of one convolution
            w = (weight * xi_w).reshape(N * F_out, C_g, *weight.shape[2:])
            y = conv(x.reshape(1, N * x.shape[1], *x.shape[2:]), w, None, stride, padding,
                     dilation, groups * N)
            y = y.reshape(N, F_out, *y.shape[2:])
        if tie is Tie.BOTH:
            tau = draw_noise(noise, (N, F_out), **kw)
            y = y * tau[:, :, None, None]
    return y if bias is None else y + bias[:, None, None]


# ============================================================================= LSTM
def noisy_lstm(
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    weights: Sequence[Sequence[Tensor]],
    noise: _noise.NoiseDistribution,
    training: bool = True,
    *,
    hidden_size: int,
    tie_gates: bool = True,
    batch_first: bool = False,
    share_across_batch: bool = False,
    normalize: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """LSTM with multiplicative noise on each layer's inputs, drawn once per sequence (section 5.2).

    ``tie_gates=True`` (Eq. 17-18): one ``xi_r`` per input dimension shared by the four gates, so
    the noisy input ``x_t * xi`` feeds a standard LSTM. ``tie_gates=False`` (Eq. 19-20): gate ``g``
    sees ``x_t * xi_g``; the four input projections of all time steps are computed in one batched
    matmul, then the recurrence runs. Recurrent weights get no noise. With ``num_layers > 1``
    every layer's input (the previous layer's output sequence) gets its own noise.

    Args:
        weights: per layer ``(weight_ih, weight_hh, bias_ih, bias_hh)`` (biases may be absent),
            in ``nn.LSTM``'s layout and gate order (i, f, g, o).

    Shape:
        x ``(T, N, D)`` (``(N, T, D)`` if batch_first, or unbatched ``(T, D)``); output
        ``(T, N, H)``; h, c ``(num_layers, N, H)``; noise ``(N, D)`` tied, ``(N, 4, D)`` untied,
        constant over t.
    """
    if not isinstance(x, Tensor) or x.dim() not in (2, 3):
        got = f"a {x.dim()}D input" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(
            f"noisy_lstm: Expected input (T, N, D) or unbatched (T, D), but received {got}"
        )
    check_int("hidden_size", hidden_size)
    unbatched = x.dim() == 2
    if unbatched:
        x = x.unsqueeze(1)
    elif batch_first:
        x = x.transpose(0, 1)
    N = x.shape[1]
    if hx is None:
        z = x.new_zeros(len(weights), N, hidden_size)
        h0, c0 = z, z
    else:
        h0, c0 = hx
        if unbatched:
            h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
    check_noise(noise)
    kw = dict(share_across_batch=share_across_batch, normalize=normalize, generator=generator,
              dtype=x.dtype, device=x.device)
    hs, cs = [], []
    inp = x
    for layer, params in enumerate(weights):
        D = inp.shape[-1]
        h0_l, c0_l = h0[layer:layer + 1], c0[layer:layer + 1]
        if not training:
            factor = _eval_factor(noise, normalize, "noisy_lstm")
            out, h, c = _lstm_kernel(_scale(inp, factor), h0_l, c0_l, params, False)
        elif tie_gates:
            out, h, c = _lstm_kernel(inp * draw_noise(noise, (N, D), **kw), h0_l, c0_l, params,
                                     True)
        else:
            xi = draw_noise(noise, (N, 4, D), **kw)  # (N or 1, 4, D)
            out, h, c = _untied_lstm_layer(inp, xi, h0[layer], c0[layer], params)
        hs.append(h)
        cs.append(c)
        inp = out
    h_n, c_n = torch.cat(hs), torch.cat(cs)
    if unbatched:
        return inp.squeeze(1), (h_n.squeeze(1), c_n.squeeze(1))
    if batch_first:
        inp = inp.transpose(0, 1)
    return inp, (h_n, c_n)
