"""Structured multiplicative-noise layers (Nalisnick & Smyth, sections 3 and 5).

Thin :class:`torch.nn.Module` wrappers over :mod:`shrinkdrop.functional`:

======================  ===================================  ===================================
layer                   prior (structure)                    peer
======================  ===================================  ===================================
``UnitNoise``           ARD, one scale per input unit        ``nn.Dropout``
``ChannelNoise``        tied filters (after a conv)          ``nn.Dropout2d``
``LayerNoise``          ADD on a branch output               torchvision ``StochasticDepth``
``WeightNoiseLinear``   DropConnect, one scale per weight    Wan et al. 2013
``NoisyResidual``       ADD / ARD / ARD+ADD inside a block   stochastic depth (bias-free ReLU)
``NoisyConv2d``         tied filters / channels / both       ``nn.Dropout2d`` (filter)
``NoisyLSTM``           LSTM inputs, tied / untied gates     input-only variational dropout
``NoisyStackedRNN``     between stacked RNN layers           ``nn.LSTM/GRU/RNN(dropout=p)``
``AttentionNoise``      attention probabilities              attention dropout
``NoisyMultihead...``   attention probabilities              ``nn.MultiheadAttention(dropout)``
======================  ===================================  ===================================

Plus :func:`mc_mode` (noise on in eval), :func:`convert` (replace dropout modules;
:func:`converted_with` / :func:`reconvert` read and re-apply what it did) and
:func:`sample_groups` (S batched noise draws).
"""

from ..functional import EvalNoiseError, Tie, sample_groups
from ._base import NoiseLayer, StructuredPrior, mc_mode
from .attention import AttentionNoise, NoisyMultiheadAttention
from .conv import NoisyConv2d
from .convert import ConversionReport, NotConverted, Replacement, convert, converted_with, reconvert
from .heads import HeadNoise, HeadNoiseAttention, add_head_noise
from .linear import WeightNoiseLinear
from .residual import NoisyResidual
from .rnn import NoisyLSTM
from .sites import NoisyWeight, SVISite, noisy_weights
from .stacked_rnn import NoisyStackedRNN
from .unit import ChannelNoise, LayerNoise, UnitNoise

__all__ = [
    "NoiseLayer",
    "UnitNoise",
    "ChannelNoise",
    "LayerNoise",
    "WeightNoiseLinear",
    "NoisyResidual",
    "NoisyConv2d",
    "NoisyLSTM",
    "NoisyStackedRNN",
    "AttentionNoise",
    "NoisyMultiheadAttention",
    "HeadNoise",
    "HeadNoiseAttention",
    "add_head_noise",
    "StructuredPrior",
    "SVISite",
    "NoisyWeight",
    "noisy_weights",
    "mc_mode",
    "convert",
    "ConversionReport",
    "Replacement",
    "NotConverted",
    "converted_with",
    "reconvert",
    "sample_groups",
    "Tie",
    "EvalNoiseError",
]
