"""``fit_stacked(step='manual')`` (hand-written backward, Adam on one flat buffer) against the
reference ``step='autograd'`` (autograd through the network and ``torch.optim.Adam``).

Both draw the same noise in the same order from the same generator, so *with the noise on*
they must train the same weights to float rounding: every objective, likelihood, depth, noise
law (Gaussian noise takes negative values: the ReLU mask and the noise are separate factors)
and per-model weight decay. The flat Adam equals ``torch.optim.Adam`` bit for bit.
"""

from __future__ import annotations

import pytest
import torch

from shrinkdrop.ensemble import STEPS, StackedNoisyMLP, fit_stacked
from shrinkdrop.ensemble.adam import _FlatAdam
from shrinkdrop.noise import Bernoulli, Beta, Gaussian, Uniform


def _pair(sizes, noises, seed=3):
    return [StackedNoisyMLP(sizes, noises, seeds=[10 + k for k in range(len(noises))],
                            generator=torch.Generator().manual_seed(seed)) for _ in range(2)]


CASES = [
    # sizes, likelihood, objective, samples, laws
    ([5, 16, 1], "gaussian", "mc", 1, [Bernoulli(0.9), Bernoulli(0.9), Gaussian(1.0, 0.5)]),
    ([5, 16, 1], "gaussian", "marginal_map", 3, [Bernoulli(0.8)] * 2 + [Uniform(0.5, 1.5)]),
    ([5, 16, 1], "gaussian", "tail_adaptive", 4, [Beta(2.0, 2.0)] * 3),
    ([5, 12, 7, 1], "gaussian", "mc", 2, [Gaussian(1.0, 0.3), Bernoulli(0.7), Bernoulli(0.7)]),
    ([5, 16, 3], "categorical", "mc", 1, [Bernoulli(0.9)] * 3),
    ([5, 16, 3], "categorical", "marginal_map", 2, [Gaussian(1.0, 0.4)] * 3),
]


@pytest.mark.parametrize("sizes,likelihood,objective,samples,laws", CASES)
def test_manual_step_equals_autograd_with_noise(sizes, likelihood, objective, samples, laws):
    g = torch.Generator().manual_seed(0)
    G, N = 2, 70  # 70 rows, batch 32: a partial last batch
    X = torch.randn(G, N, sizes[0], generator=g)
    if likelihood == "gaussian":
        y = X[..., 0] - 0.5 * X[..., 1] + 0.1 * torch.randn(G, N, generator=g)
        kw = dict(tau=[1.0, 2.0, 4.0])
    else:
        y = (X[..., 0] > 0).long() + (X[..., 1] > 0.5).long()
        kw = {}
    ref, new = _pair(sizes, laws)
    common = dict(data_of=[0, 1, 1], likelihood=likelihood, objective=objective,
                  samples=samples, weight_decay=[1e-3, 0.0, 1e-2], epochs=3, batch_size=32,
                  seeds=[1, 2, 3], progress=False, **kw)
    h_ref = fit_stacked(ref, X, y, step="autograd", **common)
    h_new = fit_stacked(new, X, y, step="manual", **common)
    for a, b in zip(list(ref.parameters()), list(new.parameters())):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
        assert b.is_contiguous() and b.untyped_storage().nbytes() == b.numel() * 4  # released
    torch.testing.assert_close(torch.tensor(h_new.loss), torch.tensor(h_ref.loss), rtol=1e-5,
                               atol=1e-6)
    # the noise streams were consumed alike: the next draw is the same
    torch.testing.assert_close(new.draw((4, sizes[0])), ref.draw((4, sizes[0])))


def test_manual_step_is_not_autograd_by_accident():
    """A wrong gradient is caught: the manual step with the hidden layer's noise mask dropped
    from the backward pass trains different weights than autograd (power of the test above)."""
    import shrinkdrop.ensemble.fit as E

    g = torch.Generator().manual_seed(1)
    X, y = torch.randn(1, 64, 4, generator=g), torch.randn(1, 64, generator=g)
    ref, new = _pair([4, 8, 1], [Bernoulli(0.5)])
    fit_stacked(ref, X, y, tau=1.0, epochs=2, step="autograd", progress=False)
    orig = E._train_forward

    def no_mask(model, x, xis):
        out, (us, ms) = orig(model, x, xis)
        return out, (us, [None] + [torch.ones_like(m) for m in ms[1:]])

    E._train_forward = no_mask
    try:
        fit_stacked(new, X, y, tau=1.0, epochs=2, step="manual", progress=False)
    finally:
        E._train_forward = orig
    assert not torch.allclose(new.weights[0], ref.weights[0], rtol=1e-3, atol=1e-4)


def test_flat_adam_is_torch_adam_bit_for_bit():
    g = torch.Generator().manual_seed(2)
    shapes = [(3, 4, 5), (3, 1, 5), (3, 5, 1)]
    a = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt = torch.optim.Adam(a, lr=3e-3)
    flat = _FlatAdam(b, lr=3e-3)
    for _ in range(25):
        grads = [torch.randn(s, generator=g) for s in shapes]
        for p, gr in zip(a, grads):
            p.grad = gr
        opt.step()
        for view, gr in zip(flat.grads, grads):
            view.copy_(gr)
        flat.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)  # views of the flat buffer, updated in place
    flat.release()
    for p, q in zip(a, b):
        assert torch.equal(p, q) and q.untyped_storage().nbytes() == q.numel() * 4


def test_unknown_step_is_named():
    net = StackedNoisyMLP([3, 2, 1], [Bernoulli(0.9)])
    X, y = torch.randn(1, 10, 3), torch.randn(1, 10)
    assert STEPS == ("manual", "autograd")
    with pytest.raises(ValueError, match="step has to be one of manual, autograd, but got 'jit'"):
        fit_stacked(net, X, y, tau=1.0, epochs=1, progress=False, step="jit")
