"""The experiments behind the CLI verbs (:mod:`shrinkdrop.cli`): one module or package per study,
each with a plain options dataclass and a ``run`` function;
:mod:`~shrinkdrop.experiments.runner` (resumable runs), :mod:`~shrinkdrop.experiments.report`,
:mod:`~shrinkdrop.experiments.stats` and :mod:`~shrinkdrop.experiments.models` are shared.

Experiments hold no mathematics of their own: they call the library and report.
"""
