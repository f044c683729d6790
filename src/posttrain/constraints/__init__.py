"""Verifiable instruction constraints keyed by IFEval's ids, with reference-exact and bug-fixed checking.

>>> from posttrain.constraints import check_all, get_constraint
>>> get_constraint("punctuation:no_comma").check("No commas here.")
True
>>> check_all("hi, there", ["punctuation:no_comma"], [{}])
[False]
"""

from posttrain.constraints.nltk_data import import_nltk

import_nltk()  # before the checker modules import NLTK's tokenizers: skips the numeric stack NLTK's package loads

from posttrain.constraints import ifbench_format as _ifbench_format  # noqa: E402, F401  # IFBench format/custom/repeat
from posttrain.constraints import ifbench_words as _ifbench_words  # noqa: E402, F401  # IFBench count/ratio/words/sentence
from posttrain.constraints import ifeval as _ifeval  # noqa: E402, F401  # registers the 25 IFEval constraints
from posttrain.constraints.base import MODES, REGISTRY, Constraint, get_constraint  # noqa: E402
from posttrain.constraints.check import check_all, check_strict_and_loose, partial_credit, strip_thinking  # noqa: E402
from posttrain.constraints.conflicts import install_conflicts  # noqa: E402

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
