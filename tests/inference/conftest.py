"""One torch thread for the inference tests: they run many small batched likelihoods, which
more threads only slow down on a shared 2-core machine."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
