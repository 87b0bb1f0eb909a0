"""Experiments behind the CLI verbs; each module has ``HELP``, ``add_arguments`` and ``run``.

Experiments hold no mathematics of their own: they call the library and report.
"""
