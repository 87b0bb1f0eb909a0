"""The five-line compaction example of README.md and docs/compress.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _block(path: Path) -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)
              if "sd.compress.compact" in b]
    assert blocks, f"{path.name} has no compaction example"
    return blocks[0]


@pytest.mark.parametrize("doc", ["README.md", "docs/compress.md"])
def test_compaction_example_runs(doc, tmp_path):
    from shrinkdrop.inference import given_scales

    code = _block(ROOT / doc).replace("/tmp/small-net", str(tmp_path / "small-net"))
    ns: dict = {}
    exec(compile(code, doc, "exec"), ns)  # noqa: S102 - our own documentation
    net, small, same, X = ns["net"], ns["small"], ns["same"], ns["X"]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    net.eval()
    with torch.no_grad(), given_scales(net, ns["fit"].scales(ns["off"])):
        ref = net(X)
    torch.testing.assert_close(small(X), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(same(X), small(X), atol=0, rtol=0)
