"""Verifiable instruction constraints keyed by IFEval's ids, with reference-exact and bug-fixed checking.

>>> from posttrain.constraints import check_all, get_constraint
>>> get_constraint("punctuation:no_comma").check("No commas here.")
True
>>> check_all("hi, there", ["punctuation:no_comma"], [{}])
[False]
"""

from posttrain.constraints import ifbench_format as _ifbench_format  # noqa: F401  # IFBench format/custom/repeat
from posttrain.constraints import ifbench_words as _ifbench_words  # noqa: F401  # IFBench count/ratio/words/sentence
from posttrain.constraints import ifeval as _ifeval  # noqa: F401  # registers the 25 IFEval constraints
from posttrain.constraints.base import MODES, REGISTRY, Constraint, get_constraint
from posttrain.constraints.check import check_all, check_strict_and_loose, partial_credit, strip_thinking
from posttrain.constraints.conflicts import install_conflicts

install_conflicts()

__all__ = [
    "MODES",
    "REGISTRY",
    "Constraint",
    "check_all",
    "check_strict_and_loose",
    "get_constraint",
    "partial_credit",
    "strip_thinking",
]
