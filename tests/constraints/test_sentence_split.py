"""The fast punkt splitter against NLTK's PunktSentenceTokenizer: same sentences, same break decisions."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tokenize.punkt import PunktSentenceTokenizer

from posttrain.constraints import text as measures
from posttrain.constraints.sentence_split import SentenceSplitter
from tests.constraints.corpus import EDGE_CASES, responses, varied_prose

# What punkt keys on: abbreviations, initials, numbers, ellipses, end marks before closing quotes and brackets (the
# realignment), and every kind of whitespace (string.whitespace, and what it leaves out: \x1c, \xa0).
PIECES = st.sampled_from(
    ["Hello", "world", "Dr", "Mr", "e.g", "U.S", "A", "i", "5", "3.5", "x", ".", ".", "..", "...", "?", "!", "!?", ",",
     ";", ":", '"', "'", ")", "(", "]", "}", "\u201d", "\u2019", "\xbb", "--", "-", " ", " ", "  ", "\n", "\n\n",
     "\t", "\r", "\x0b", "\x1c", "\xa0", "The", "It", "and", "No", "p.m", "Jan", "\xfc", "\xc9"]
)  # fmt: skip


def _nltk() -> PunktSentenceTokenizer:
    return PunktSentenceTokenizer(measures.nltk_punkt_parameters())


def _ours() -> SentenceSplitter:
    return SentenceSplitter(measures.nltk_punkt_parameters())


def test_sentences_equal_nltk_on_a_corpus() -> None:
    nltk, ours = _nltk(), _ours()
    texts = EDGE_CASES + responses(200, seed=4) + [varied_prose(20_000, seed=1), varied_prose(20_000, seed=2).upper()]
    for text in texts:
        assert ours.sentences(text) == nltk.tokenize(text), text[:200]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(PIECES, max_size=25).map("".join) | st.text(max_size=60))
def test_sentences_equal_nltk(text: str) -> None:
    assert _ours().sentences(text) == _nltk().tokenize(text)


def test_break_decisions_equal_nltk_on_every_candidate_context() -> None:
    nltk, ours = _nltk(), _ours()
    contexts = [context for text in EDGE_CASES + responses(300, seed=5) + [varied_prose(30_000, seed=3), varied_prose(30_000, seed=4).upper()]
                for _, context in nltk._match_potential_end_contexts(text)]  # fmt: skip
    assert len(set(contexts)) > 800
    assert [ours.contains_break(c) for c in contexts] == [nltk.text_contains_sentbreak(c) for c in contexts]


def test_decisions_are_memoised_and_cleared() -> None:
    ours = _ours()
    ours.sentences("Dr. Smith left. He was late.")
    assert ours._decisions
    ours.clear()
    assert not ours._decisions
