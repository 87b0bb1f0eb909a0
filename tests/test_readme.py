"""The README's tour runs as written, and the public API it shows stays importable."""

from __future__ import annotations

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert ns["noise"].second_moment.item() == 0.5
    assert ns["noise"].inverse_square_variance.item() == float("inf")
    assert torch.isfinite(ns["mean"]).all()
    assert len(ns["report"].replaced) == 1
    assert ns["per_model_ll"].shape == (6,) and torch.isfinite(ns["per_model_ll"]).all()
    incl = ns["svi"].inclusion()["0.xi"]
    assert incl.shape == (10,) and ((incl >= 0) & (incl <= 1)).all()
    assert torch.isfinite(ns["ll_pruned"]).all()
    r = ns["r"]
    assert r.quantiles.shape == (2, 50, 1) and bool((r.quantiles[0] < r.quantiles[1]).all())
    assert ns["history"].best_epoch is not None and len(ns["history"].val_ll) >= 1


def test_public_api():
    import shrinkdrop as sd

    for name in ("noise", "priors", "nn", "functional", "train", "gaps", "convert",
                 "mc_mode", "fit", "DataError", "ShrinkdropError", "__version__"):
        assert hasattr(sd, name), name
    assert set(sd.noise.FAMILIES) == {"bernoulli", "gaussian", "rayleigh", "inverse_nakagami",
                                      "half_cauchy", "beta", "uniform", "log_normal"}
