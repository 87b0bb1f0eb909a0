"""What a conversion was done with: the spec :func:`shrinkdrop.convert` records, and the undo log
that makes a failed ``convert`` leave the model as it was."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .. import noise as _noise
from ..errors import ConversionError

#: where the spec lives on a torch model (not in the state dict; deepcopy / torch.save keep it)
MODEL_ATTR = "_shrinkdrop_conversion"


def noise_spec(noise) -> Any:
    """A JSON-able description of ``convert``'s ``noise`` argument."""
    if isinstance(noise, str):
        return noise
    if isinstance(noise, _noise.NoiseDistribution):
        params = noise.parameters
        if all(isinstance(v, (int, float)) for v in params.values()):
            return {"family": type(noise).__name__, "parameters": dict(params)}
        return {"repr": repr(noise)}  # batched parameters: described, not rebuilt
    owner = getattr(noise, "__self__", None)
    if inspect.isclass(owner) and issubclass(owner, _noise.NoiseDistribution) and \
            getattr(_noise, owner.__name__, None) is owner:
        return {"family": owner.__name__, "per_rate": noise.__name__}  # e.g. Gaussian.dropout
    return {"callable": getattr(noise, "__qualname__", repr(noise))}


def rebuild_noise(spec: Any):
    """``convert``'s ``noise`` argument from :func:`noise_spec`; ``ConversionError`` when the
    spec cannot be rebuilt (a user's callable, batched parameters)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict) and "family" in spec:
        cls = getattr(_noise, spec["family"], None)
        if inspect.isclass(cls) and issubclass(cls, _noise.NoiseDistribution):
            if "parameters" in spec:
                return cls(**spec["parameters"])
            if "per_rate" in spec:
                return getattr(cls, spec["per_rate"])
    raise ConversionError(
        f"the recorded noise {spec!r} cannot be rebuilt (a callable of your own, or batched "
        "parameters): call shrinkdrop.convert(model, noise) with the same noise instead")


def spec(noise, share_across_batch: bool, normalize: bool, generator) -> dict:
    return {"noise": noise_spec(noise), "share_across_batch": bool(share_across_batch),
            "normalize": bool(normalize), "generator": generator is not None, "version": 1}


def record(model: nn.Module, the_spec: dict, hf_configs: list) -> None:
    """Store the spec on the model object and on every HF config it holds (config.json)."""
    setattr(model, MODEL_ATTR, dict(the_spec))
    for cfg in hf_configs:
        cfg.shrinkdrop = dict(the_spec)


# ------------------------------------------------------------------ the undo log
def _copy_state(obj) -> tuple[Any, dict, dict]:
    d = vars(obj)
    return obj, dict(d), {k: dict(v) for k, v in d.items() if isinstance(v, dict)}


def snapshot(model: nn.Module, hf_configs: list) -> list:
    """The state ``convert`` can change: every module's attributes and child / parameter /
    buffer / hook dictionaries (shallow), and every HF config's attributes."""
    return [_copy_state(m) for m in model.modules()] + [_copy_state(c) for c in hf_configs]


def restore(saved: list) -> None:
    """Put back what :func:`snapshot` saw (the same dictionary objects, refilled)."""
    for obj, attrs, dicts in saved:
        d = vars(obj)
        d.clear()
        d.update(attrs)
        for k, v in dicts.items():
            d[k].clear()
            d[k].update(v)


def check_bare(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
