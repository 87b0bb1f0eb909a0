"""torch.compile and torch.distributed (gloo, CPU) checks of the noise layers.

The distributed test spawns two processes; its comparisons are exact (no randomized tolerance).
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import shrinkdrop as sd
from shrinkdrop import noise as N


@pytest.mark.slow
# raised inside Dynamo's own tensor inspection, not by shrinkdrop; harmless
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor:UserWarning")
def test_compiled_forward_backward_unit_and_channel():
    """One compiled graph holding ChannelNoise and UnitNoise, forward + backward."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), sd.nn.ChannelNoise(N.Gaussian(1.0, 0.5)),
                          nn.Flatten(), sd.nn.UnitNoise(N.Bernoulli(0.8)), nn.Linear(144, 2))
    cmodel = torch.compile(model, backend="inductor")
    x = torch.randn(16, 3, 8, 8, requires_grad=True)
    y = cmodel(x)
    y.sum().backward()
    assert y.shape == (16, 2) and torch.isfinite(x.grad).all()
    assert model[0].weight.grad is not None and model[4].weight.grad is not None
    # the noise really is on under compilation: two calls differ
    assert not torch.equal(cmodel(x), cmodel(x))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, queue):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)  # identical model initialisation on both ranks
        model = nn.Sequential(nn.Linear(6, 6), sd.nn.UnitNoise(N.Bernoulli(0.5)), nn.Linear(6, 1))
        x = torch.ones(4, 6)
        # (1) default: each rank its own noise (per-rank seeds, as DDP scripts do)
        torch.manual_seed(100 + rank)
        noise = sd.nn.UnitNoise(N.Bernoulli(0.5))(torch.ones(64, 32))
        gathered = [torch.empty_like(noise) for _ in range(world)]
        dist.all_gather(gathered, noise)
        differs = not torch.equal(gathered[0], gathered[1])
        # (2) asked otherwise: an identically seeded generator gives identical noise
        same = sd.nn.UnitNoise(N.Bernoulli(0.5), generator=torch.Generator().manual_seed(3))
        n2 = same(torch.ones(64, 32))
        g2 = [torch.empty_like(n2) for _ in range(world)]
        dist.all_gather(g2, n2)
        equal = torch.equal(g2[0], g2[1])
        # (3) gradients agree after all-reduce (what DDP does)
        loss = model(x).pow(2).sum()
        loss.backward()
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad /= world
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        gg = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gg, flat)
        queue.put((rank, differs, equal, torch.equal(gg[0], gg[1])))
    finally:
        dist.destroy_process_group()


def test_two_process_noise_and_gradients():
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, _free_port(), queue), nprocs=2, join=True,
                       start_method="spawn")
    results = sorted(queue.get() for _ in range(2))
    for _rank, differs, equal, grads_agree in results:
        assert differs, "noise has to differ across ranks by default"
        assert equal, "an identically seeded generator has to give identical noise"
        assert grads_agree, "gradients have to agree after all-reduce"
