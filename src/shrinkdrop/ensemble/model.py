"""The stacked networks: ``K`` noisy MLPs held as stacked weights ``(K, d_in, d_out)``, run with
batched matrix products; their initialisation (``torch`` or ``keras``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import functional as F
from ..nn import SVISite, UnitNoise
from ..noise import NoiseDistribution

__all__ = ["StackedNoisyMLP", "init_linears_", "check_init", "INITS"]


#: weight initialisations: ``torch`` (``nn.Linear``'s default) or ``keras`` (Keras' Dense
#: default, as in MC dropout's published UCI code: Glorot-uniform weights, zero biases)
INITS = ("torch", "keras")


def init_linears_(linears: Sequence[nn.Linear], init: str = "torch") -> None:
    """Re-initialise freshly built ``nn.Linear`` layers (in order, from the global RNG).

    ``'torch'`` leaves them as built; ``'keras'`` draws the weights Glorot-uniform,
    ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (``nn.init.xavier_uniform_``), and
    zeroes the biases, as Keras' ``Dense`` does by default.
    """
    init = check_init(init)
    if init == "keras":
        with torch.no_grad():
            for lin in linears:
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)


def check_init(init: str) -> str:
    """``init`` if it is one of :data:`INITS` (a ValueError otherwise)."""
    if init not in INITS:
        raise ValueError(f"init has to be one of {', '.join(INITS)}, but got {init!r}")
    return init


def _groups(noises: Sequence[NoiseDistribution]) -> list[tuple[NoiseDistribution, int, int]]:
    """Runs of consecutive models sharing one law object: ``(noise, start, stop)``."""
    out: list[tuple[NoiseDistribution, int, int]] = []
    for k, nz in enumerate(noises):
        if out and out[-1][0] is nz:
            out[-1] = (nz, out[-1][1], k + 1)
        else:
            out.append((nz, k, k + 1))
    return out


def _affine(u: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``u @ w + b`` for every model: ``(K, n, a) x (K, a, c) + (K, 1, c) -> (K, n, c)``.

    With one output (``c = 1``, regression) the product is taken as ``(K, 1, a) x (K, a, n)``:
    a batched matrix-vector product with one output column takes MKL's slow path (5-7x the
    time of the same product with one output *row* at K = 36, n = 128, a = 50, one thread;
    docs/uci.md, "The training step")."""
    if w.shape[2] == 1:
        K, n = u.shape[0], u.shape[1]
        return torch.baddbmm(b, w.reshape(K, 1, -1), u.transpose(1, 2)).view(K, n, 1)
    return torch.baddbmm(b, u, w)


class StackedNoisyMLP(nn.Module):
    """``K`` independent MLPs with multiplicative unit noise before every linear layer.

    Model ``k`` is ``noise_k -> Linear(sizes[0], sizes[1]) -> ReLU -> noise_k -> ... ->
    Linear(sizes[-2], sizes[-1])``: the network of MC dropout's UCI experiments with each
    ``Dropout`` replaced by :class:`shrinkdrop.nn.UnitNoise` (one draw per example and input
    unit), for ``K`` models at once.

    Args:
        sizes: layer widths ``[d_in, hidden..., d_out]`` (at least two).
        noises: one noise law per model (length ``K``); pass the *same object* for models that
            share a law (consecutive models sharing an object share one draw call).
        seeds: per-model initialisation seeds (default ``0..K-1``): model ``k``'s layers are
            initialised as ``nn.Linear`` layers built in order after ``torch.manual_seed``
            (then re-initialised by :func:`init_linears_` with ``init``).
        init: ``'torch'`` (default, ``nn.Linear``'s) or ``'keras'`` (Glorot-uniform weights, zero
            biases).
        normalize: divide the noise by its mean (default True).
        generator: the noise draws' :class:`torch.Generator`.

    Shapes: ``forward`` takes ``(K, N, d_in)`` and returns ``(K, N, d_out)``.
    """

    def __init__(self, sizes: Sequence[int], noises: Sequence[NoiseDistribution], *,
                 seeds: Sequence[int] | None = None, normalize: bool = True,
                 generator: torch.Generator | None = None, init: str = "torch") -> None:
        super().__init__()
        check_init(init)
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes has to be at least two positive widths [d_in, ..., d_out], "
                             f"but got {sizes}")
        noises = list(noises)
        if not noises:
            raise ValueError("noises has to hold one noise law per model, but got none")
        for i, nz in enumerate(noises):
            F.check_noise(nz, f"noises[{i}]")
        K = len(noises)
        seeds = list(range(K)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != K:
            raise ValueError(f"seeds has to have one seed per model ({K}), but got {len(seeds)}")
        self.sizes, self.noises = sizes, noises
        self.normalize, self.generator = normalize, generator
        self._groups = _groups(noises)
        for nz, _, _ in self._groups:
            if normalize:
                nz.normalizing_mean("StackedNoisyMLP")
        ws = [[] for _ in sizes[1:]]
        bs = [[] for _ in sizes[1:]]
        with torch.random.fork_rng(devices=[]):
            for s in seeds:
                torch.manual_seed(s)
                lins = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                init_linears_(lins, init)
                for i, lin in enumerate(lins):
                    ws[i].append(lin.weight.detach().t())
                    bs[i].append(lin.bias.detach())
        self.weights = nn.ParameterList(nn.Parameter(torch.stack(w)) for w in ws)  # (K, a, b)
        self.biases = nn.ParameterList(nn.Parameter(torch.stack(b).unsqueeze(1)) for b in bs)

    @property
    def n_models(self) -> int:
        return len(self.noises)

    def draw(self, shape: tuple[int, int], dtype: torch.dtype | None = None,
             out: Tensor | None = None) -> Tensor:
        """Normalised noise for all models: ``(K, *shape)``, model k's from its own law;
        written into the contiguous ``out`` of that shape when given (no new memory)."""
        n, d = shape
        if out is None:
            out = torch.empty((self.n_models, n, d), dtype=dtype or torch.get_default_dtype(),
                              device=self.weights[0].device)
        elif tuple(out.shape) != (self.n_models, n, d) or not out.is_contiguous():
            raise ValueError(f"out has to be a contiguous {(self.n_models, n, d)} tensor, but "
                             f"got shape {tuple(out.shape)}")
        for nz, a, b in self._groups:  # each law fills its models' slice in place
            F._draw_into(nz, out[a:b], normalize=self.normalize, generator=self.generator)
        return out

    def _eval_factors(self, dtype) -> Tensor | None:
        if self.normalize:
            return None
        f = [F._eval_factor(nz, False, "StackedNoisyMLP") for nz in self.noises]
        return torch.tensor(f, dtype=dtype, device=self.weights[0].device).view(-1, 1, 1)

    def forward(self, x: Tensor, noise: bool | None = None) -> Tensor:
        """``(K, N, d_in) -> (K, N, d_out)``; noise in train mode (or ``noise=True``), else the
        noise's mean (1 when normalised)."""
        if x.ndim != 3 or x.shape[0] != self.n_models or x.shape[2] != self.sizes[0]:
            raise ValueError(f"x has to have shape (K={self.n_models}, N, d_in={self.sizes[0]}), "
                             f"but got {tuple(x.shape)}")
        noise = self.training if noise is None else noise
        factor = None if noise else self._eval_factors(x.dtype)
        inplace = not torch.is_grad_enabled()  # no autograd: reuse the fresh buffers
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if noise:
                xi = self.draw((h.shape[1], h.shape[2]), h.dtype)
                h = xi.mul_(h) if inplace else h * xi
            elif factor is not None:
                h = h * factor
            h = _affine(h, w, b)
            if i < last:
                h = h.relu_() if inplace else torch.relu(h)
        return h

    def unit_noise(self, k: int) -> UnitNoise:
        """Model ``k``'s noise before each linear layer as the layer it is: a
        :class:`shrinkdrop.nn.UnitNoise` with model ``k``'s law, which says what the noise means
        (its :meth:`~shrinkdrop.nn.UnitNoise.scale_sites`, its
        :meth:`~shrinkdrop.nn.UnitNoise.prior`). :meth:`draw` draws its noise for all models
        at once, in the shape of ``UnitNoise``'s per-example draw (the input's shape)."""
        return UnitNoise(self.noises[k], normalize=self.normalize)

    def scale_sites(self, k: int) -> list[SVISite]:
        """Model ``k``'s scale sites, one ``xi`` (ARD) per linear layer, as its
        :meth:`unit_noise` names them; ``path`` is the noise layer's index in :meth:`model`
        (so they equal :func:`shrinkdrop.inference.scale_sites` of ``model(k)``)."""
        layer = self.unit_noise(k)
        return [dataclasses.replace(s, path=str(3 * i))
                for i, d in enumerate(self.sizes[:-1]) for s in layer.scale_sites((1, d))]

    def model(self, k: int) -> nn.Sequential:
        """Model ``k`` as an ordinary ``nn.Sequential`` of ``UnitNoise`` and ``nn.Linear``
        layers (a copy of its current weights)."""
        layers: list[nn.Module] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            layers.append(self.unit_noise(k))
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[k].t())
                lin.bias.copy_(b[k, 0])
            layers.append(lin)
            if i < last:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
