"""The public API of shrinkdrop, pinned: names, exceptions, annotations.

``PUBLIC_API`` is the one table to update when a public name is added, moved or renamed
(together with ``_PUBLIC`` in ``src/shrinkdrop/__init__.py`` for the top level).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types

import pytest

import shrinkdrop as sd

#: module -> its exact ``__all__`` (order free). Top level: ``shrinkdrop``.
PUBLIC_API: dict[str, set[str]] = {
    "shrinkdrop": {
        "noise", "priors", "functional", "nn", "train", "ensemble", "gaps", "inference", "data",
        "errors", "enums", "convert", "mc_mode", "fit", "ShrinkdropError", "DataError",
        "__version__", "compress", "metrics",
    },
    "shrinkdrop.errors": {
        "ShrinkdropError", "DataError", "NotNormalizableError", "EvalNoiseError",
        "UnsupportedLayerError", "SVIError", "InfiniteObjectiveError", "MissingExtraError",
        "RunMismatchError", "ClusterError",
        "ConversionError",  # issue 26 (conv26)
        "CompactionError",  # issue 27 (compress27)
        "NonFiniteLossError",  # issue 28 (work28)
        "PartFileWarning",  # issue 26 (input26)
    },
    "shrinkdrop.enums": {"Likelihood", "Objective", "Param", "PredictMode", "Structure", "Tie"},
    "shrinkdrop.noise": {
        "NoiseDistribution", "NotNormalizableError", "Bernoulli", "Gaussian", "Rayleigh",
        "InverseNakagami", "HalfCauchy", "Beta", "Uniform", "ScaledNoncentralChi2", "FAMILIES",
        "standard_gamma", "LogNormal", "LogUniform", "kl_lognormal_log_uniform",
    },
    "shrinkdrop.sampling": {"is_cpu"},
    "shrinkdrop.priors": {
        "GaussianScaleMixture", "Horseshoe", "Laplace", "SpikeAndSlab", "StudentT",
        "VarianceGamma", "log_bessel_k0", "log_exp1_scaled", "special",
    },
    "shrinkdrop.priors.special": {"log_bessel_k0", "log_exp1_scaled"},
    "shrinkdrop.functional": {
        "Tie", "EvalNoiseError", "sample_groups", "current_sample_groups", "check_noise",
        "draw_noise", "unit_noise", "channel_noise", "layer_noise", "weight_noise_linear",
        "noisy_residual", "noisy_conv2d", "noisy_lstm",
    },
    "shrinkdrop.nn": {
        "NoiseLayer", "UnitNoise", "ChannelNoise", "LayerNoise", "WeightNoiseLinear",
        "NoisyResidual", "NoisyConv2d", "NoisyLSTM", "NoisyStackedRNN", "AttentionNoise",
        "NoisyMultiheadAttention", "StructuredPrior", "mc_mode", "convert", "ConversionReport",
        "Replacement", "NotConverted", "sample_groups", "Tie", "EvalNoiseError", "SVISite",
        "NoisyWeight", "noisy_weights",
        "converted_with", "reconvert",  # issue 26 (conv26)
        "HeadNoise", "HeadNoiseAttention", "add_head_noise",  # issue 27 (compress27)
    },
    "shrinkdrop.train": {
        "Objective", "Likelihood", "PredictMode", "InfiniteObjectiveError", "mc_objective",
        "marginal_map", "tail_adaptive", "tail_adaptive_weights", "objective", "weight_decay",
        "log_prior_ep", "log_prior_hp", "expected_log_prior_hp", "noisy_weights",
        "sample_outputs", "noise_on", "predict", "gaussian_log_likelihood",
        "categorical_log_likelihood", "log_likelihood", "predictive_log_likelihoods",
        "predictive_log_likelihood", "fit_predictive_precision", "fit_predictive_tau", "fit",
        "History", "bernoulli_log_likelihood", "ShrinkageLoss", "NonFiniteLossError",
        "predictive", "Predictive",
    },
    "shrinkdrop.metrics": {
        "nll", "accuracy", "brier", "ece", "reliability", "interval_coverage", "auroc",
        "gaussian_mixture_nll",
    },
    "shrinkdrop.ensemble": {
        "StackedNoisyMLP", "fit_stacked", "stacked_loss", "StackedHistory", "stacked_predictive",
        "stacked_fit_tau", "init_linears_", "check_init", "INITS", "STEPS",
    },
    "shrinkdrop.gaps": {
        "GapEstimate", "jensen_gap_mc", "jensen_gap_enumerated", "ep_gap", "ep_series",
        "hp_gap_exact", "hp_gap_mc", "hp_series", "input_scales", "scaled_log_likelihood",
        "noise_with_second_moment",
    },
    "shrinkdrop.inference": {
        "Likelihood", "NetSpec", "NutsResult", "Param", "ScaleSite", "Structure",
        "effective_weights", "flatten_chains", "forward", "log_likelihood", "make_model",
        "predictive_metrics", "pyro_law", "run_nuts", "fit_map_noise", "ImportanceReadout",
        "conditional_readout", "importance_readout", "inclusion_probabilities", "readout_table",
        "relevance_auc", "shrinkage_factors", "site_diagnostics", "summarize", "GibbsResult",
        "ESS_MIN", "RHAT_MAX", "MixingVerdict", "mixing_verdict", "gibbs_bernoulli",
        "SVIResult", "SVISite", "fit_svi", "given_scales", "scale_sites", "LinearSSResult",
        "linear_spike_slab", "log_marginal", "Removal", "median_probability_rule",
        "one_se_removal", "numpyro_model", "run_nuts_jax",
    },
    "shrinkdrop.inference.svi": {
        "SVIResult", "SVISite", "bernoulli_kl", "fit_svi", "given_scales",
        "local_expectation_grad", "scale_sites", "slab_owners",
    },
    "shrinkdrop.data": {
        "Split", "UCIData", "BUILTIN", "load_uci_dir", "load_builtin", "resolve_data",
        "find_uci_dirs", "standardize",
    },
    "shrinkdrop.cli": {"VERBS", "build_parser", "main"},
    "shrinkdrop.compress": {
        "compact", "fit_scales", "ScaleFit", "row_log_likelihood", "build", "spec_of", "save",
        "load", "Select", "Residual", "HeadAttention", "compact_attention", "compact_hf_heads",
        "shrink_hf_heads", "count_parameters", "count_flops", "time_inference",
    },
}


def _module(name: str) -> types.ModuleType:
    return importlib.import_module(name)


@pytest.mark.parametrize("name", sorted(PUBLIC_API))
def test_all_is_pinned(name):
    assert set(_module(name).__all__) == PUBLIC_API[name]
    assert len(_module(name).__all__) == len(PUBLIC_API[name]), "a name listed twice"


@pytest.mark.parametrize("name", sorted(PUBLIC_API))
def test_every_public_name_resolves(name):
    mod = _module(name)
    for attr in mod.__all__:
        assert getattr(mod, attr) is not None, f"{name}.{attr}"


def test_public_submodules_are_pinned():
    """Every module named in an ``__all__`` has its own pin."""
    for name in PUBLIC_API:
        mod = _module(name)
        for attr in mod.__all__:
            if isinstance(getattr(mod, attr), types.ModuleType):
                assert f"{name}.{attr}" in PUBLIC_API, f"{name}.{attr} is not pinned"


def test_dir_is_the_public_set():
    assert dir(sd) == sorted(sd.__all__)
    assert "importlib" not in vars(sd) and "annotations" not in vars(sd)


def test_top_level_is_lazy_and_helpers_are_private():
    # submodules imported elsewhere (shrinkdrop.experiments, .cli) become attributes: allowed
    ns = {k for k, v in vars(sd).items() if not k.startswith("_")
          and getattr(v, "__name__", None) != f"shrinkdrop.{k}"}
    assert ns <= set(sd.__all__), ns - set(sd.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sd.nope  # noqa: B018


def test_py_typed_is_shipped():
    from importlib.resources import files

    assert files("shrinkdrop").joinpath("py.typed").is_file()


def test_readme_names_are_attributes():
    assert sd.ensemble.fit_stacked is not None
    assert sd.fit is sd.train.fit
    assert sd.convert is sd.nn.convert and sd.mc_mode is sd.nn.mc_mode


# ---------------------------------------------------------------------------------------------
# every module of the package (tools/check_api_refs.py's walk), for the exception walk

def _exception_classes() -> dict[str, type]:
    found = {}
    for mod in _refs_checker().all_modules():
        for obj in vars(mod).values():
            if (isinstance(obj, type) and issubclass(obj, BaseException)
                    and obj.__module__.startswith("shrinkdrop")):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def _not_shrinkdrop_errors() -> set[str]:
    return {k for k, c in _exception_classes().items() if not issubclass(c, sd.ShrinkdropError)}


def test_exception_walk_finds_the_known_classes():
    found = _exception_classes()
    assert "shrinkdrop.errors.DataError" in found
    assert len(found) >= 5


def test_every_exception_derives_from_shrinkdrop_error():
    assert _not_shrinkdrop_errors() == set()


# ---------------------------------------------------------------------------------------------
# annotations of everything reachable from the public API

def _functions_of(obj: object, qualname: str) -> list[tuple[str, object]]:
    """(qualified name, function) for a public function, or every public method of a class."""
    if inspect.isfunction(obj):
        return [(qualname, obj)]
    if not inspect.isclass(obj):
        return []
    out = []
    for klass in obj.__mro__:
        if not klass.__module__.startswith("shrinkdrop"):
            continue
        for attr, member in vars(klass).items():
            if attr.startswith("_") and attr not in ("__init__", "__call__", "__new__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member) and member.__module__.startswith("shrinkdrop"):
                out.append((f"{klass.__module__}.{klass.__qualname__}.{attr}", member))
    return out


def _missing_annotations(fn: object) -> list[str]:
    ann = getattr(fn, "__annotations__", {})
    sig = inspect.signature(fn)
    missing = [p for i, p in enumerate(sig.parameters)
               if p not in ann and not (i == 0 and p in ("self", "cls", "mcs"))]
    if "return" not in ann:
        missing.append("return")
    return missing


def _public_functions() -> dict[str, object]:
    seen: dict[str, object] = {}
    for name in PUBLIC_API:
        mod = _module(name)
        for attr in mod.__all__:
            obj = getattr(mod, attr)
            if getattr(obj, "__module__", "").startswith("shrinkdrop"):
                for qual, fn in _functions_of(obj, f"{obj.__module__}.{attr}"):
                    seen[qual] = fn
    return seen


def annotation_offenders() -> dict[str, list[str]]:
    """qualified name -> its parameters (and ``return``) without an annotation."""
    out = {}
    for qual, fn in sorted(_public_functions().items()):
        missing = _missing_annotations(fn)
        if missing:
            out[f"{fn.__module__}:{qual.removeprefix(fn.__module__ + '.')}"] = missing
    return out


def test_checker_sees_missing_annotations():
    def f(x: int, y, *args, **kwargs: int) -> None: ...

    def g(self, x: int): ...

    assert _missing_annotations(f) == ["y", "args"]
    assert _missing_annotations(g) == ["return"]


def test_every_public_function_is_annotated():
    assert annotation_offenders() == {}


# ---------------------------------------------------------------------------------------------
# Sphinx-role references of the public docstrings (tools/check_api_refs.py, run by `make docs`)

def _refs_checker() -> types.ModuleType:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "check_api_refs.py"
    spec = importlib.util.spec_from_file_location("check_api_refs", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_api_refs", mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return sys.modules["check_api_refs"]


def test_public_docstring_references_resolve():
    checker = _refs_checker()
    count, bad = checker.broken_references(checker.docstrings(checker.public_modules()))
    assert count > 100
    assert bad == []


def test_reference_checker_catches_broken_ones():
    checker = _refs_checker()
    ctx = (sd.functional, sd)
    for good in ("unit_noise", "~shrinkdrop.noise.Bernoulli", "torch.Generator", "ValueError",
                 "shrinkdrop.noise", "numpy.ndarray", "the layer <shrinkdrop.nn.UnitNoise>"):
        assert checker.resolves(checker.target_of(good), ctx), good
    for bad in ("unit_nosie", "torch.Genertor", "Bernoulli.nope", "nosuchpackage.x"):
        assert not checker.resolves(checker.target_of(bad), ctx), bad
    doc = checker.Doc("f.py", "m.f", "See :func:`unit_noise` and :class:`Nope`.", ctx)
    assert checker.broken_references(iter([doc])) == (2, [("f.py", "m.f", ":class:`Nope`")])


if __name__ == "__main__":  # list the offenders: python tests/test_public_api.py
    for k, v in annotation_offenders().items():
        print(f"{k}: {', '.join(v)}")
