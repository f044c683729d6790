"""The memoised text measures against NLTK run plainly, and strict+loose at once against two check_all calls."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tokenize.destructive import NLTKWordTokenizer
from nltk.tokenize.punkt import PunktSentenceTokenizer

from posttrain.constraints import check_all, check_strict_and_loose
from posttrain.constraints import text as measures
from tests.constraints.corpus import ALL_IDS, EDGE_CASES, kwargs_sets, responses

# ASCII pieces around the Treebank tokenizer's letter-letter splits and capitals next to non-letters.
PIECES = st.sampled_from(
    ["Hello", "world", "I", "In't", "isn't", "CAN'T", "Can't", "cannot", "CANNOT", "Gonna", "GIMME", "'Tis", "'twas",
     ",'tis", "D'ye", "More'n", "A.", "U.S.", "OK", "Ok", "x", "Dr.", "e.g.", "NASA's", "I'm", "Wanna ", "lemme",
     "\"Quote\"", "(Paren)", "--", "...", "!", "?", ",", ":", ";", " ", " ", "\n", "3", "A1", "aB", "Ab", "AbC"]
)
SENTENCE = st.lists(PIECES, max_size=14).map("".join)


def _plain_uppercase_count(text: str) -> int:
    tokenizer = NLTKWordTokenizer()
    sentences = PunktSentenceTokenizer(measures.nltk_punkt_parameters()).tokenize(text)
    return sum(1 for sentence in sentences for token in tokenizer.tokenize(sentence) if token.isupper())


def test_sentences_equal_plain_punkt() -> None:
    plain = PunktSentenceTokenizer(measures.nltk_punkt_parameters())
    measures.clear_caches()
    for text in EDGE_CASES + responses(120, seed=4):
        assert list(measures.sentences(text)) == plain.tokenize(text), text


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(SENTENCE, st.text(max_size=80)))
def test_uppercase_words_equal_plain_word_tokenize(text: str) -> None:
    measures.clear_caches()
    assert measures.count_uppercase_words(text) == _plain_uppercase_count(text)


def test_the_shortcut_is_taken_and_refused_where_it_must_be() -> None:
    assert measures._no_uppercase_token("Hello there, said Bob.")
    for sentence in ("In't so.", "CANnot", "I am.", "Say A.", "Hi NASA", "'Tis Here", "Hé"):
        assert not measures._no_uppercase_token(sentence), sentence


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
