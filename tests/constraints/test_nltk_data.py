"""NLTK loads for the checkers without the numeric stack its package `__init__` pulls in, and that stack stays
importable afterwards (in a fresh interpreter: the test process has long imported numpy)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import posttrain.constraints
from posttrain.constraints import check_all
print(sorted(n for n in ("scipy", "scipy.stats", "sklearn") if n in sys.modules))
print(check_all("One sentence. Two sentences.", ["length_constraints:number_sentences"],
                [{"num_sentences": 2, "relation": "at least"}]))
import scipy.stats
print(scipy.stats.fisher_exact([[1, 2], [3, 4]]).pvalue > 0)
"""


def test_the_checkers_load_nltk_without_scipy_and_scipy_still_imports_afterwards():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == ["[]", "[True]", "True"]


def test_nltk_already_imported_is_left_alone():
    probe = "import nltk, scipy.stats, sys; import posttrain.constraints; print('scipy.stats' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "True\n"
