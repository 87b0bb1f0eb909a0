"""The scale sites of a model (asked of its noise layers) and running it at given scales."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

from ...errors import SVIError, UnsupportedLayerError
from ...nn import NoiseLayer
from ...nn.sites import SVISite

__all__ = ["SVISite", "scale_sites", "given_scales"]

Scales = Mapping[str, Tensor]


@contextlib.contextmanager
def given_scales(model: nn.Module, scales: Scales | Callable[[], Scales]) -> Iterator[nn.Module]:
    """Run ``model``'s noise layers with the given global scales instead of drawing noise.

    ``scales`` maps site names (``SVISite.name``, e.g. ``"0.xi"``) to tensors of the site's shape,
    or is a callable returning that mapping at each forward pass (read lazily, so that it can be
    changed between passes and used inside ``torch.func.vmap``). Sites not in the mapping keep
    their scale at 1 (the unit is on). Each layer runs its own
    :meth:`~shrinkdrop.nn.NoiseLayer.forward_at_scales`; its noise is back on exit.
    """
    get = scales if callable(scales) else (lambda: scales)
    layers = _noise_layers(model)
    saved = []
    try:
        for path, layer in layers:
            saved.append((layer, layer._given_scales))
            layer._given_scales = _own_scales(get, path, layer.scale_roles())
        yield model
    finally:
        for layer, old in saved:
            layer._given_scales = old


def _own_scales(get: Callable[[], Scales], path: str, roles: tuple[str, ...]
                ) -> Callable[[], dict[str, Tensor]]:
    """The layer at ``path``'s view of the model-level mapping: ``{role: scale}``."""
    keys = {role: f"{path}.{role}" if path else role for role in roles}

    def own() -> dict[str, Tensor]:
        cur = get()
        return {role: cur[key] for role, key in keys.items() if key in cur}

    return own


def _supported() -> str:
    return ", ".join(NoiseLayer.layers_with_sites())


def _noise_layers(model: nn.Module) -> list[tuple[str, NoiseLayer]]:
    out: list[tuple[str, NoiseLayer]] = []
    for path, m in model.named_modules():
        if isinstance(m, NoiseLayer):
            if not m.has_scale_sites():
                raise SVIError(
                    f"model has a {type(m).__name__} at {path or '<root>'!r}; structured VI "
                    f"supports {_supported()} (global scales per unit, channel, filter or layer)")
            if any(path.startswith(p + ".") for p, _ in out if p):
                raise SVIError(f"noise layer {path!r} is nested inside another noise layer; "
                               "structured VI needs them side by side")
            out.append((path, m))
    return out


def scale_sites(model: nn.Module, example: Tensor) -> list[SVISite]:
    """The scale sites of ``model`` and their shapes, found by one forward pass on ``example``
    (each layer names its own sites for the input it sees)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    if not isinstance(example, Tensor):
        raise TypeError(f"example has to be a tensor, but got {type(example).__name__}")
    layers = _noise_layers(model)
    if not layers:
        raise SVIError(f"model has no shrinkdrop noise layer ({_supported()}): nothing to infer")
    shapes: dict[str, torch.Size] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda mod, args, _p=path: shapes.__setitem__(_p, args[0].shape))
        for path, layer in layers]
    try:
        with torch.no_grad(), given_scales(model, {}):
            model(example)
    except (RuntimeError, ValueError, IndexError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SVIError(f"X has to be an input the model can run on, but a forward pass on rows "
                       f"of shape {tuple(example.shape)} failed: {first}") from None
    finally:
        for h in hooks:
            h.remove()
    sites = []
    for path, layer in layers:
        if path not in shapes:
            raise SVIError(f"noise layer {path!r} is not used by model's forward pass")
        try:
            own = layer.scale_sites(shapes[path])
        except UnsupportedLayerError as e:  # pragma: no cover - has_scale_sites was checked
            raise SVIError(str(e)) from e
        sites += [dataclasses.replace(s, path=path) for s in own]
    return sites
