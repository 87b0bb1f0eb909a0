"""log K0 and log(e^u E1(u)) against mpmath (50 digits) over their whole float64 range."""

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sp
import torch
from torch.autograd import gradcheck, gradgradcheck

from shrinkdrop.priors import log_bessel_k0, log_exp1_scaled

mp.mp.dps = 50
D = torch.float64


def test_log_bessel_k0_vs_mpmath():
    x = np.logspace(-16, 16, 97)
    got = log_bessel_k0(torch.tensor(x, dtype=D)).numpy()
    ref = np.array([float(mp.log(mp.besselk(0, mp.mpf(v)))) for v in x])
    # error of the log = relative error of K0
    assert np.max(np.abs(got - ref)) < 1e-12
    np.testing.assert_allclose(got[x < 700], np.log(sp.k0(x[x < 700])), rtol=0, atol=1e-12)


def test_log_exp1_scaled_vs_mpmath():
    u = np.concatenate([np.logspace(-20, 20, 121), np.linspace(1.5, 2.5, 41)])
    got = log_exp1_scaled(torch.tensor(u, dtype=D)).numpy()
    ref = np.array([float(mp.log(mp.exp(mp.mpf(v)) * mp.e1(mp.mpf(v)))) for v in u])
    assert np.max(np.abs(got - ref)) < 1e-10
    small = u < 50
    np.testing.assert_allclose(np.exp(got[small]), sp.exp1(u[small]) * np.exp(u[small]), rtol=1e-12)


def test_poles_and_no_overflow():
    zero = torch.zeros(1, dtype=D)
    assert log_bessel_k0(zero).item() == np.inf
    assert log_exp1_scaled(zero).item() == np.inf
    assert torch.isfinite(log_exp1_scaled(torch.tensor([1e300], dtype=D))).all()
    assert torch.isfinite(log_bessel_k0(torch.tensor([1e300], dtype=D))).all()


@pytest.mark.parametrize("fn", [log_bessel_k0, log_exp1_scaled])
def test_first_and_second_derivatives(fn):
    x = torch.tensor([1e-2, 0.1, 0.5, 1.99, 2.01, 7.0, 100.0, 1e4], dtype=D, requires_grad=True)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))
