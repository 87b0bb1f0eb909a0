"""The nets and the methods of ``shrinkdrop compress``: one function per method, each
returning the compacted model and its scores for one seed."""

from __future__ import annotations

import copy
import math
import time

import torch
from torch import Tensor, nn

from ... import compress as C
from ... import noise as N
from ...inference import given_scales
from ...inference.readout import one_se_removal

__all__ = ["ARCHS", "METHODS", "build_net", "arch_of", "PRIORS"]

ARCHS = ("lenet5", "lenet300")
#: method -> what it is (the table's words)
METHODS = {
    "dense": "dense net (no removal)",
    "ss": "structured VI, spike-and-slab scales (Bernoulli(0.5) prior)",
    "hs": "structured VI, horseshoe scales (half-Cauchy(1) prior)",
    "sbp": "SBP: log-normal q, truncated log-uniform prior",
    "magnitude": "torch-pruning group-magnitude pruning to SS's FLOPs + fine-tuning",
}


def PRIORS(method: str) -> N.NoiseDistribution:  # noqa: N802 - a table as a function
    """The prior (noise law) of the scales of a method."""
    if method == "hs":
        return N.HalfCauchy(1.0)
    if method == "sbp":
        return N.LogUniform(math.exp(-20.0), math.exp(2.0))
    return N.Bernoulli(0.5)


def build_net(arch: str, law: N.NoiseDistribution, classes: int = 10) -> nn.Sequential:
    """LeNet-5 (Caffe: conv 20 and 50 filters 5x5, dense 800 -> 500 -> classes) on 28x28 or
    LeNet-300-100 on 784 inputs, with a scale per filter and per dense input unit."""
    import shrinkdrop as sd

    def ch() -> nn.Module:
        return sd.nn.ChannelNoise(law, normalize=False)

    def un() -> nn.Module:
        return sd.nn.UnitNoise(law, normalize=False)

    if arch == "lenet5":
        return nn.Sequential(
            nn.Conv2d(1, 20, 5), ch(), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 5), ch(), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            un(), nn.Linear(800, 500), nn.ReLU(), un(), nn.Linear(500, classes))
    if arch == "lenet300":
        return nn.Sequential(nn.Flatten(), un(), nn.Linear(784, 300), nn.ReLU(), un(),
                             nn.Linear(300, 100), nn.ReLU(), un(), nn.Linear(100, classes))
    raise ValueError(f"arch has to be one of {', '.join(ARCHS)}, but got {arch!r}")


def arch_of(model: nn.Module) -> str:
    """``a-b-c-d``: output channels of each conv, then input units of each dense layer
    (``20-50-800-500`` for LeNet-5; the inputs a Select keeps count)."""
    out = []
    mods = list(model.modules())
    for m in mods:
        if isinstance(m, nn.Conv2d):
            out.append(m.out_channels)
        elif isinstance(m, nn.Linear):
            out.append(m.in_features)
    return "-".join(str(v) for v in out)


def _batches(n: int, bs: int, g: torch.Generator):
    perm = torch.randperm(n, generator=g)
    return [perm[i:i + bs] for i in range(0, n, bs)]


def train_dense(model: nn.Module, X: Tensor, y: Tensor, *, epochs: int, batch_size: int,
                lr: float, seed: int, wd: float) -> None:
    """Adam on cross-entropy (+ ``wd / 2 ||W||^2 / n``) with every scale at 1."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = X.shape[0]
    with given_scales(model, {}):
        for _ in range(epochs):
            for idx in _batches(n, batch_size, g):
                loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
                loss = loss + wd * sum((p**2).sum() for p in model.parameters()
                                       if p.dim() >= 2) / (2 * n)
                opt.zero_grad()
                loss.backward()
                opt.step()
    model.eval()


@torch.no_grad()
def scores(model: nn.Module, X: Tensor, y: Tensor, batch: int = 2000) -> dict[str, float]:
    """Test error and NLL (mean over rows) of a plain model in eval mode."""
    model.eval()
    nll, err = 0.0, 0.0
    for i in range(0, X.shape[0], batch):
        out = model(X[i:i + batch])
        nll += float(nn.functional.cross_entropy(out, y[i:i + batch], reduction="sum"))
        err += float((out.argmax(-1) != y[i:i + batch]).sum())
    return {"error": err / X.shape[0], "nll": nll / X.shape[0]}


def _row_ll(model: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return -nn.functional.cross_entropy(model(X), y, reduction="none")


def describe(plain: nn.Module, dense_plain: nn.Module, Xte: Tensor, yte: Tensor,
             timing: bool, repeats: int) -> dict:
    """Scores, architecture, parameters, FLOPs and (``timing``) CPU time against the dense."""
    row = scores(plain, Xte, yte)
    x1 = Xte[:2]
    row.update(arch=arch_of(plain), params=C.count_parameters(plain),
               flops=C.count_flops(plain, x1), dense_flops=C.count_flops(dense_plain, x1))
    if timing:
        xb = Xte[:256]
        t = C.time_inference([dense_plain, plain], xb, repeats=repeats, threads=1)
        row.update(t_dense_min=t[0]["min"], t_dense_median=t[0]["median"],
                   t_min=t[1]["min"], t_median=t[1]["median"],
                   speedup_min=t[0]["min"] / t[1]["min"],
                   speedup_median=t[0]["median"] / t[1]["median"])
    return row


def vi_method(model: nn.Module, data: dict, opts, seed: int) -> tuple[nn.Module, dict]:
    """Fit ``q(xi)`` from the dense weights, choose the removal by the one-SE rule on the
    validation rows, compact at the read-out's scales."""
    fit = C.fit_scales(model, data["X"], data["y"], epochs=opts.finetune,
                       batch_size=opts.batch_size, lr=opts.lr, q_lr=opts.q_lr, seed=seed,
                       sigma0=opts.sigma0, progress=not opts.no_progress)

    def loglik(removed: dict[str, Tensor]) -> Tensor:
        with given_scales(model, fit.scales(removed)):
            return _row_ll(model, data["Xva"], data["yva"])

    sc = fit.scores()
    if opts.flops_target:
        if opts.allocation == "validation":
            removal = validation_removal(model, fit, sc, data["X"][:2], opts.flops_target,
                                         loglik)
        else:
            removal = flops_removal(model, fit, sc, data["X"][:2], opts.flops_target)
        extra = {"val_ll": float(loglik(removal).mean()),
                 "val_ll_full": float(loglik({}).mean())}
    else:
        removal = one_se_removal(sc, loglik, candidates=20)
        extra = {"threshold": removal.threshold, "val_ll": removal.ll,
                 "val_ll_full": removal.ll_full, "val_se": removal.se}
    plain = C.compact(model, fit.scales(removal), data["X"][:2])
    extra.update(fit_seconds=fit.seconds,
                 removed=int(sum(int(m.sum()) for m in removal.values())))
    if opts.retrain:  # the compacted (plain) net trained on, as magnitude pruning fine-tunes
        t0 = time.perf_counter()
        train_dense(plain, data["X"], data["y"], epochs=opts.retrain,
                    batch_size=opts.batch_size, lr=opts.lr, seed=seed, wd=opts.sigma0**-2)
        extra["retrain_seconds"] = time.perf_counter() - t0
    return plain, extra


def _lowest_first(scores: dict[str, Tensor]):
    """``masks(k)``: per site, the ``k[site]`` lowest-scored units marked for removal."""
    order = {n: v.reshape(-1).argsort() for n, v in scores.items()}

    def masks(k: dict[str, int]) -> dict[str, Tensor]:
        out = {}
        for n, v in scores.items():
            m = torch.zeros(v.numel(), dtype=torch.bool)
            m[order[n][:k[n]]] = True
            out[n] = m.reshape(v.shape)
        return out

    return masks


def flops_removal(model: nn.Module, fit, scores: dict[str, Tensor], example: Tensor,
                  factor: float) -> dict[str, Tensor]:
    """The largest kept fraction ``f`` of every site whose removal cuts the compacted net's
    FLOPs by ``factor`` (bisection on ``f``): in each site the ``1 - f`` lowest posterior
    scores go (at least one unit stays). Which units go is the posterior's choice; how many per
    site is a uniform fraction. One global ranking by score removed the cheap dense units first
    and hit the conv filters, which hold the FLOPs, last (82-90% error at 5x); a ranking by
    score per FLOP saved removed all but one conv1 filter."""
    target = C.count_flops(C.compact(model, None, example), example) / factor
    lowest = _lowest_first(scores)

    def removed(f: float) -> dict[str, Tensor]:
        return lowest({n: min(int(math.floor((1.0 - f) * v.numel())), v.numel() - 1)
                       for n, v in scores.items()})

    lo, hi = 0.0, 1.0  # FLOPs at lo <= target < FLOPs at hi
    for _ in range(20):
        mid = 0.5 * (lo + hi)
        f = C.count_flops(C.compact(model, fit.scales(removed(mid)), example), example)
        lo, hi = (mid, hi) if f <= target else (lo, mid)
    return removed(lo)


def validation_removal(model: nn.Module, fit, scores: dict[str, Tensor], example: Tensor,
                       factor: float, loglik, chunk: float = 0.05) -> dict[str, Tensor]:
    """Remove units until the compacted net's FLOPs fall by ``factor``: in each site in
    posterior order (lowest score first, at least one unit stays), the sites chosen greedily by
    the validation rows. Each step tries, at every site, removing its next ``chunk`` of units
    (at least one) and takes the candidate that loses the least mean validation
    log-likelihood (``loglik(removed)``, per row, at the read-out's scales) per FLOP saved.
    The posterior says which units of a site go, the held-out rows how many per site: a
    uniform fraction per site (:func:`flops_removal`) also removes dense units that cost
    almost no FLOPs."""
    full = C.count_flops(C.compact(model, None, example), example)
    target = full / factor
    masks = _lowest_first(scores)
    size = {n: v.numel() for n, v in scores.items()}
    step = {n: max(1, round(chunk * size[n])) for n in scores}

    def flops(k: dict[str, int]) -> float:
        return C.count_flops(C.compact(model, fit.scales(masks(k)), example), example)

    k = {n: 0 for n in scores}
    cur_f, cur_ll = full, float(loglik(masks(k)).mean())
    while cur_f > target:
        best = None
        for n in scores:
            cand = dict(k, **{n: min(k[n] + step[n], size[n] - 1)})
            if cand[n] == k[n] or (f := flops(cand)) >= cur_f:
                continue
            ll = float(loglik(masks(cand)).mean())
            cost = (cur_ll - ll) / (cur_f - f)
            if best is None or cost < best[0]:
                best = (cost, cand, f, ll)
        if best is None:  # every site is down to one unit
            break
        _, k, cur_f, cur_ll = best
    return masks(k)


def _tp_prune(dense_plain: nn.Module, example: Tensor, ratio: float) -> nn.Module:
    import torch_pruning as tp

    m = copy.deepcopy(dense_plain)
    last = [x for x in m.modules() if isinstance(x, nn.Linear)][-1]
    pruner = tp.pruner.MagnitudePruner(
        m, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
        global_pruning=True, pruning_ratio=ratio, ignored_layers=[last])
    pruner.step()
    return m


def magnitude_method(dense_plain: nn.Module, target_flops: float, data: dict, opts,
                     seed: int) -> tuple[nn.Module, dict]:
    """``torch-pruning``'s global group-magnitude pruning of the dense net, its ratio bisected
    to ``target_flops``, then fine-tuning for the same epochs as the VI methods (their VI
    epochs plus their ``retrain`` epochs)."""
    x1 = data["X"][:2]
    lo, hi = 0.0, 0.99
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        f = C.count_flops(_tp_prune(dense_plain, x1, mid), x1)
        lo, hi = (mid, hi) if f > target_flops else (lo, mid)
    m = _tp_prune(dense_plain, x1, hi)
    t0 = time.perf_counter()
    train_dense(m, data["X"], data["y"], epochs=opts.finetune + opts.retrain,
                batch_size=opts.batch_size, lr=opts.lr, seed=seed, wd=opts.sigma0**-2)
    return m, {"ratio": hi, "fit_seconds": time.perf_counter() - t0}
