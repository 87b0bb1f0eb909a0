"""From "switched off" to a smaller model: compaction, its plain description, and counts.

:func:`compact` turns a model with noise layers, run at given scales (a read-out's: 0 for a
switched-off unit, channel, block or head), into a plain ``nn.Sequential`` whose output equals
the masked model's; :func:`save` / :func:`load` store it as a JSON spec plus a state dict
(``torch.load(weights_only=True)``); :func:`count_parameters`, :func:`count_flops` and
:func:`time_inference` measure it. ``docs/compress.md`` has the walk-through.
"""

from .count import count_flops, count_parameters, time_inference
from .fit import ScaleFit, fit_scales, row_log_likelihood
from .heads import compact_attention, compact_hf_heads, shrink_hf_heads
from .spec import HeadAttention, Residual, Select, build, load, save, spec_of
from .surgery import compact

__all__ = [
    "compact",
    "fit_scales",
    "ScaleFit",
    "row_log_likelihood",
    "build",
    "spec_of",
    "save",
    "load",
    "Select",
    "Residual",
    "HeadAttention",
    "compact_attention",
    "compact_hf_heads",
    "shrink_hf_heads",
    "count_parameters",
    "count_flops",
    "time_inference",
]
