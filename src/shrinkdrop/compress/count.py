"""Parameters, FLOPs and measured CPU inference time of a model."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["count_parameters", "count_flops", "time_inference"]


def count_parameters(model: nn.Module) -> int:
    """The number of parameters (buffers such as BatchNorm statistics not counted)."""
    return int(sum(math.prod(p.shape) for p in model.parameters()))


def count_flops(model: nn.Module, example: Tensor) -> float:
    """FLOPs of one forward pass per example, by ``torch.utils.flop_counter`` (a
    multiply-add counts 2; matrix products, convolutions and attention are counted,
    element-wise layers are not), measured on the batch ``example`` and divided by its
    size."""
    from torch.utils.flop_counter import FlopCounterMode

    was = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            model(example)
    finally:
        model.train(was)
    return fc.get_total_flops() / example.shape[0]


def time_inference(models: Sequence[nn.Module], x: Tensor, *, repeats: int = 20,
                   warmup: int = 3, threads: int = 1) -> list[dict[str, float]]:
    """Seconds per forward pass of each model on ``x``, measured interleaved in this process
    (round ``i`` runs every model once, in turn) with ``threads`` torch threads: per model
    ``{"min": ..., "median": ...}`` over ``repeats`` rounds."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    times: list[list[float]] = [[] for _ in models]
    try:
        for m in models:
            m.eval()
        with torch.inference_mode():
            for r in range(warmup + repeats):
                for i, m in enumerate(models):
                    t0 = time.perf_counter()
                    m(x)
                    dt = time.perf_counter() - t0
                    if r >= warmup:
                        times[i].append(dt)
    finally:
        torch.set_num_threads(old)
    return [{"min": min(t), "median": statistics.median(t)} for t in times]
