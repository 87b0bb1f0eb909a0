"""``shrinkdrop compress``: structured VI read-outs, SBP and magnitude pruning turned into
smaller, faster LeNets, side by side (:mod:`.methods`, :mod:`.run`, :mod:`.summary`)."""

from .methods import ARCHS, METHODS, build_net
from .run import HELP, PUBLISHED, CompressOptions, run

__all__ = ["HELP", "ARCHS", "METHODS", "PUBLISHED", "CompressOptions", "build_net", "run"]
