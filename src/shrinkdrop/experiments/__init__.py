"""The experiments behind the CLI verbs (:mod:`shrinkdrop.cli`): one module or package per
study, each with a plain options dataclass and a ``run`` function; :mod:`.runner` (resumable
runs), :mod:`.report`, :mod:`.stats` and :mod:`.models` are shared.

Experiments hold no mathematics of their own: they call the library and report.
"""
