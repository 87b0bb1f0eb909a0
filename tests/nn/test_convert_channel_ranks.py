"""Converted nn.Dropout1d / nn.Dropout3d keep torch's ranks: unbatched (C, L) and (C, D, H, W)
inputs drop whole channels, in training, and pass through unchanged in eval (issue 26)."""

import pytest
import torch
from scipy.stats import binomtest
from torch import nn

import shrinkdrop as sd


@pytest.mark.parametrize("cls,shape", [
    (nn.Dropout1d, (400, 5)),          # unbatched (C, L)
    (nn.Dropout1d, (2, 200, 5)),       # batched (N, C, L)
    (nn.Dropout3d, (400, 2, 3, 3)),    # unbatched (C, D, H, W)
    (nn.Dropout3d, (2, 200, 2, 3, 3)),  # batched (N, C, D, H, W)
])
def test_converted_channel_dropout_drops_whole_channels(cls, shape):
    model = nn.Sequential(cls(0.3))
    report = sd.convert(model, "bernoulli")
    assert report.complete and model[0].spatial_dims == (1 if cls is nn.Dropout1d else 3)
    x = torch.rand(shape) + 0.5
    model.eval()
    assert torch.equal(model(x), x)
    model.train()
    torch.manual_seed(0)
    y = model(x)
    unbatched = len(shape) == (2 if cls is nn.Dropout1d else 4)
    per_channel = (y == 0).reshape(shape[0], -1) if unbatched else \
        (y == 0).reshape(shape[0] * shape[1], -1)
    dropped = per_channel.all(1)
    assert torch.equal(dropped, per_channel.any(1)), "a channel is dropped whole or not at all"
    kept = ~dropped
    ratio = (y.reshape(per_channel.shape)[kept] / x.reshape(per_channel.shape)[kept])
    torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / 0.7))
    # the rate: two-sided binomial test at level 1e-6 (false-failure rate <= 1e-6 by design)
    assert binomtest(int(dropped.sum()), dropped.numel(), 0.3).pvalue > 1e-6


def test_converted_dropout2d_reads_any_rank_as_torch():
    model = nn.Sequential(nn.Dropout2d(0.5))
    sd.convert(model, "bernoulli")
    assert model[0].spatial_dims is None
    x = torch.ones(2, 3, 4, 4)
    torch.manual_seed(1)
    y = model(x)
    per = (y == 0).reshape(6, -1)
    assert torch.equal(per.all(1), per.any(1))
