"""sd.fit from tensors, a Dataset or a DataLoader; validation with early stopping; the loss as one
object (ShrinkageLoss); refusal of non-finite data, diverging losses and mis-shaped targets."""

import math
import re

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shrinkdrop as sd
from shrinkdrop.errors import NonFiniteLossError
from shrinkdrop.train import ShrinkageLoss, fit


def _data(n=96, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = X[:, :1] - 0.5 * X[:, 1:2] + 0.1 * torch.randn(n, 1, generator=g)
    return X, y


def _mlp(seed=0, d=5, out=1):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(),
                         sd.nn.UnitNoise(sd.noise.Bernoulli(0.8)), nn.Linear(16, out))


def test_dataset_and_loader_train_the_same_as_tensors():
    X, y = _data()
    kw = dict(tau=10.0, samples=2, sigma0=1.0, epochs=3, batch_size=32, lr=1e-2,
              progress=False)
    m1, m2 = _mlp(), _mlp()
    h1 = fit(m1, X, y, **kw)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=False)
    h2 = fit(m2, loader, **kw)
    # same rows, same sigma0 -> weight decay 1/N, same number of steps
    assert h2.args["n"] == 96 and h2.args["weight_decay"] == pytest.approx(1 / 96)
    assert h1.epochs == h2.epochs == 3 and h2.loss[-1] < h2.loss[0]
    m3 = _mlp()
    h3 = fit(m3, TensorDataset(X, y), **kw)
    assert h3.epochs == 3 and all(math.isfinite(v) for v in h3.loss)
    # a dataset is reproducible with the seed
    m4 = _mlp()
    h4 = fit(m4, TensorDataset(X, y), **kw)
    assert h3.loss == h4.loss


def test_validation_early_stopping_restores_the_best_weights():
    X, y = _data(128)
    Xv, yv = _data(64, seed=1)
    seen = {}

    def cb(epoch, hist, model):
        seen[epoch] = {k: v.clone() for k, v in model.state_dict().items()}

    m = _mlp()
    h = fit(m, X, y, tau=10.0, epochs=12, lr=5e-2, progress=False, val=(Xv, yv), patience=2,
            val_samples=4, callback=cb)
    assert len(h.val_ll) == h.epochs and h.best_epoch == max(range(h.epochs),
                                                              key=h.val_ll.__getitem__)
    for k, v in m.state_dict().items():
        assert torch.equal(v, seen[h.best_epoch][k])
    # validation draws its own noise: training is the same with or without it; a loader as
    # validation data gives close numbers (other draws: a DataLoader takes its base seed from
    # the RNG)
    m2 = _mlp()
    h2 = fit(m2, X, y, tau=10.0, epochs=3, lr=5e-2, progress=False, seed=3,
             val=DataLoader(TensorDataset(Xv, yv), batch_size=64), val_samples=4)
    m3 = _mlp()
    h3 = fit(m3, X, y, tau=10.0, epochs=3, lr=5e-2, progress=False, seed=3, val=(Xv, yv),
             val_samples=4)
    h4 = fit(_mlp(), X, y, tau=10.0, epochs=3, lr=5e-2, progress=False, seed=3)
    assert h2.loss == h3.loss == h4.loss
    assert h2.val_ll == pytest.approx(h3.val_ll, abs=0.5)
    assert h3.val_ll[-1] > h3.val_ll[0]


def test_shrinkage_loss_is_the_loss_fit_trains():
    """A hand-written loop with ShrinkageLoss reproduces sd.fit's losses and weights."""
    X, y = _data(64)
    for objective, S in [("mc", 1), ("marginal_map", 3), ("tail_adaptive", 3)]:
        m1, m2 = _mlp(1), _mlp(1)
        h = fit(m1, X, y, tau=4.0, objective=objective, samples=S, sigma0=1.0, epochs=2,
                batch_size=16, lr=1e-2, progress=False, seed=5)
        loss_fn = ShrinkageLoss("gaussian", tau=4.0, objective=objective, samples=S,
                                sigma0=1.0, n=64)
        opt = torch.optim.Adam(m2.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(5)
        losses = []
        with torch.random.fork_rng():
            torch.manual_seed(5)
            m2.train()
            for _ in range(2):
                perm, tot = torch.randperm(64, generator=gen), 0.0
                for i in range(0, 64, 16):
                    idx = perm[i:i + 16]
                    loss = loss_fn(m2, X[idx], y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot += float(loss.detach()) * 16
                losses.append(tot / 64)
        assert losses == pytest.approx(h.loss, rel=1e-6)
        for a, b in zip(m1.parameters(), m2.parameters()):
            torch.testing.assert_close(a, b)


def test_bernoulli_likelihood_matches_bce_and_trains():
    logits = torch.randn(3, 7, 1)
    y = (torch.rand(7) > 0.5).float()
    ll = sd.train.bernoulli_log_likelihood(logits, y)
    ref = -nn.functional.binary_cross_entropy_with_logits(
        logits[..., 0], y.expand(3, 7), reduction="none")
    torch.testing.assert_close(ll, ref)
    X, yr = _data(64)
    h = fit(_mlp(), X, (yr > 0).float(), likelihood="bernoulli", epochs=4, lr=2e-2,
            progress=False)
    assert h.loss[-1] < h.loss[0]


@pytest.mark.parametrize("where", ["X", "y"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_fit_refuses_non_finite_data_naming_the_argument(where, value):
    X, y = _data(16)
    (X if where == "X" else y)[3, 0] = value
    with pytest.raises(ValueError, match=rf"^{where} has to hold finite values.*row 3"):
        fit(_mlp(), X, y, tau=1.0, epochs=1, progress=False)


def test_non_finite_loss_stops_saying_where_and_why():
    X, y = _data(64)
    # finite data, but the loader yields a NaN batch in epoch 0, batch 1
    Xb = X.clone()
    Xb[20] = math.nan
    loader = DataLoader(TensorDataset(Xb, y), batch_size=16)
    with pytest.raises(NonFiniteLossError, match=r"epoch 0, batch 1: the batch's inputs \(X\)"):
        fit(_mlp(), loader, tau=1.0, epochs=1, progress=False)
    # finite but huge inputs: the squared error overflows float32
    with pytest.raises(NonFiniteLossError, match=r"is inf at epoch 0, batch 0: the log-lik"):
        fit(_mlp(), X * 1e25, y, tau=1.0, epochs=1, batch_size=16, progress=False)
    # a likelihood that is NaN for finite outputs
    with pytest.raises(NonFiniteLossError, match="log-likelihood is not finite"):
        fit(_mlp(), X, y, tau=1.0, likelihood=lambda o, t: torch.log(-o.sum(-1) * 0 - 1),
            epochs=1, progress=False)


@pytest.mark.parametrize("shape", [(40, 3), (40, 1, 1), (40, 2)])
def test_mis_shaped_targets_are_refused_not_broadcast(shape):
    X = torch.randn(40, 5)
    with pytest.raises(ValueError, match=r"y has to have the shape of the model's output.*"
                       + re.escape(str(shape))):
        fit(_mlp(), X, torch.zeros(shape), tau=1.0, epochs=1, progress=False)


def test_bad_categorical_targets_and_sources():
    X, _ = _data(32)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\].*\[0, 5\]"):
        fit(_mlp(out=3), X, torch.arange(32) % 6, likelihood="categorical", epochs=1,
            progress=False)
    with pytest.raises(ValueError, match="y has to be None when X is a DataLoader"):
        fit(_mlp(), DataLoader(TensorDataset(X, X)), X, tau=1.0, progress=False)
    with pytest.raises(TypeError, match="y is needed when X is a tensor"):
        fit(_mlp(), X, tau=1.0, progress=False)
    with pytest.raises(TypeError, match="a batch of the DataLoader has to be a pair"):
        fit(_mlp(), DataLoader(TensorDataset(X)), tau=1.0, progress=False)
    with pytest.raises(ValueError, match="sigma0 needs n"):
        ShrinkageLoss("gaussian", tau=1.0, sigma0=1.0)



def test_inputs_that_do_not_fit_the_model_are_named():
    X, y = _data(40)
    with pytest.raises(ValueError, match=r"^X of shape \(40, 3\) does not fit the model"):
        fit(_mlp(), X[:, :3], y, tau=1.0, epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"^x of shape \(40, 3\) does not fit the model"):
        sd.train.predict(_mlp(), X[:, :3], 4)
    with pytest.raises(ValueError, match="x has to have at least one row"):
        sd.train.predict(_mlp(), X[:0], 4)
    with pytest.raises(ValueError, match="X is on the meta device"):
        fit(_mlp(), X.to("meta"), y.to("meta"), tau=1.0, progress=False)
    with pytest.raises(TypeError, match="seed has to be an integer"):
        fit(_mlp(), X, y, tau=1.0, seed="a", progress=False)
    with pytest.raises(ValueError, match="y_std has to be positive"):
        sd.train.predictive_log_likelihoods(_mlp(), X, y, 4, tau=1.0, y_std=0.0)


def test_fused_mc_loss_equals_the_general_path():
    """The fused MC losses (mse / cross_entropy / BCE) against -mean of the per-example
    log-likelihoods, at S = 1 and S = 3, sequence targets included."""
    g = torch.Generator().manual_seed(0)
    for lik, out, y in [
        ("gaussian", torch.randn(3, 8, 2, generator=g), torch.randn(8, 2, generator=g)),
        ("gaussian", torch.randn(1, 8, 1, generator=g), torch.randn(8, generator=g)),
        ("categorical", torch.randn(3, 8, 4, generator=g), torch.randint(0, 4, (8,))),
        ("categorical", torch.randn(1, 8, 5, 4, generator=g), torch.randint(0, 4, (8, 5))),
        ("bernoulli", torch.randn(3, 8, 2, generator=g), (torch.rand(8, 2) > 0.5).float()),
    ]:
        loss = ShrinkageLoss(lik, tau=2.5)
        ref = -loss.log_likelihoods(out, y).mean()
        torch.testing.assert_close(loss.from_outputs(out, y), ref)
        if out.shape[0] == 1:
            torch.testing.assert_close(loss._fused(out[0], y, True), ref)
