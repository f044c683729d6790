"""The memoised text measures against NLTK run plainly, and strict+loose at once against two check_all calls."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer

from posttrain.constraints import check_all, check_strict_and_loose
from posttrain.constraints import text as measures
from tests.constraints.corpus import ALL_IDS, EDGE_CASES, kwargs_sets, responses
from tests.constraints.test_uppercase_words import SENTENCE


def _plain_uppercase_count(text: str) -> int:
    tokenizer = NLTKWordTokenizer()
    sentences = PunktSentenceTokenizer(measures.nltk_punkt_parameters()).tokenize(text)
    return sum(1 for sentence in sentences for token in tokenizer.tokenize(sentence) if token.isupper())


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(SENTENCE, st.text(max_size=80)))
def test_uppercase_words_equal_plain_word_tokenize(text: str) -> None:
    measures.clear_caches()
    assert measures.count_uppercase_words(text) == _plain_uppercase_count(text)


def test_strict_and_loose_at_once_equal_two_check_all_calls() -> None:
    ids = list(ALL_IDS)
    rows = [[kwargs_sets(cid, 1, seed=seed)[0] for cid in ids] for seed in range(5)]
    for index, text in enumerate(EDGE_CASES[::2] + responses(40, seed=9)):
        kwargs = rows[index % len(rows)]
        for mode in ("ifeval", "fixed"):
            expected = (check_all(text, ids, kwargs, mode=mode), check_all(text, ids, kwargs, loose=True, mode=mode))
            assert check_strict_and_loose(text, ids, kwargs, mode=mode) == expected, text
    thinking = "<think>plan, plan</think>\nNo commas here"
    assert check_strict_and_loose(thinking, ["punctuation:no_comma"], [{}], strip_thinking=True) == ([True], [True])
