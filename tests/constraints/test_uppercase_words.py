"""Uppercase-token counting against NLTK's word tokenizer run on every sentence in full."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nltk.tokenize.destructive import NLTKWordTokenizer

from posttrain.constraints import uppercase_words

# Pieces around the Treebank tokenizer's letter-letter splits, capitals next to non-letters, and the chunk
# shapes counted without tokenizing, next to the marks, periods and separators that could break them.
PIECES = st.sampled_from(
    ["Hello", "world", "I", "In't", "isn't", "CAN'T", "Can't", "cannot", "CANNOT", "Gonna", "GIMME", "'Tis", "'twas",
     ",'tis", "D'ye", "More'n", "A.", "U.S.", "OK", "Ok", "x", "Dr.", "e.g.", "NASA's", "NASA'S", "I'm", "I'M",
     "I'll", "I'd", "I've", "I's", "Wanna ", "lemme", "\"Quote\"", "(Paren)", "--", "...", "..", "!", "?", ",", ":",
     ";", "*", "**", "'", "''", "\"", "(", ")", "[", "]", "<", ">", "{", "}", "-", "&", "`", " ", " ", "\n", "\t",
     "\x1c", "\x1f", "\xa0", "3", "5,", ",5", "A1", "B2B", "A.5", "U.S.A", "aB", "Ab", "AbC", "DON'T", "Ü", "é",
     "Ärger", "ǅ", "ß", "\u0301", "K", "ſ", "«", "»", "“", "’", "\u2014", "\u3000"]
)
SENTENCE = st.lists(PIECES, max_size=14).map("".join)


def test_common_chunks_are_counted_from_their_shape_alone() -> None:
    shape = uppercase_words._count_from_shape
    assert [shape(chunk) for chunk in "Hello there, said Bob. Zürich café São".split()] == [0] * 7
    assert [shape(chunk) for chunk in 'I (NASA) "U.S." CEO; I\'m I\'ll, B2B**'.split()] == [1] * 7
    for chunk in ("In't", "CANnot", "I'm.", "I'M", "'Tis", "ÄRGER", "ZÜrich", "NASA's", "A-B"):
        assert shape(chunk) is None, chunk


# Chunks from the marks each tokenizer rule keys on, between every kind of whitespace: what a wrong shape rule or a
# wrong neighbouring character in uppercase_words would get wrong (mutation-checked: "I'm'\nI", "WANNA", "I'm. I").
ATOMS = st.sampled_from(
    ["I", "I'm", "NASA", "x", "Ä", "ü", "'", '"', ".", ",", "(", ")", "*", "-", "»", "'s", "'S", "n't", "'T", "is",
     "WANNA", "CAN", "not"]
)  # fmt: skip
CHUNK = st.lists(ATOMS, min_size=1, max_size=3).map("".join)
CHUNKED_SENTENCE = st.builds(
    lambda lead, chunks, trail: lead + "".join(chunk + space for chunk, space in chunks).rstrip() + trail,
    st.sampled_from(["", "", " ", "\n"]),
    st.lists(st.tuples(CHUNK, st.sampled_from([" ", " ", "\n", "\t", "\xa0"])), min_size=1, max_size=6),
    st.sampled_from(["", "", " "]),
)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sentences=st.lists(CHUNKED_SENTENCE | SENTENCE, min_size=1, max_size=3))
def test_uppercase_tokens_equal_the_tokenizer_sentence_by_sentence(sentences: list[str]) -> None:
    uppercase_words.clear()
    tokenizer = NLTKWordTokenizer()
    expected = sum(1 for sentence in sentences for token in tokenizer.tokenize(sentence) if token.isupper())
    assert uppercase_words.count_uppercase_tokens(sentences) == expected


# Every literal a tokenizer pass keys on, and the letters of its contractions in both cases.
MARKS = st.sampled_from(
    ["«", "“", "‘", "„", "`", "``", '"', "''", "'", ".", "..", ",", ":", ";", "@", "#", "$", "%", "&", "\u2013", "\u2014",
     "?", "!", "*", "(", ")", "[", "]", "{", "}", "<", ">", "--", "»", "”", "’", "'s", "'S", "'m", "'ll", "n't", "N'T",
     "can", "not", "CAN", "d", "'ye", "gim", "me", "gon", "na", "got", "ta", "lem", "more", "'n", "wan", "'t", "is",
     "was", "'T", "IS", "x", "A", "5", " ", " ", "\n", "\t", "\xa0", "\x1c", "ſ", "K"]
)  # fmt: skip


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.lists(MARKS, max_size=16).map("".join) | CHUNKED_SENTENCE | st.text(max_size=40))
def test_treebank_tokenize_equals_nltk(text: str) -> None:
    assert uppercase_words.treebank_tokenize(text) == NLTKWordTokenizer().tokenize(text)


def test_every_tokenizer_pass_but_whitespace_has_its_literals() -> None:
    # A pass NLTK adds or rewrites would silently always run (correct, slower): this says when that happens.
    passes = uppercase_words._BEFORE_PADDING + uppercase_words._AFTER_PADDING
    assert [pattern.pattern for pattern, _, needs in passes if needs is None] == ["\\s+"]
    assert all(word is not None for _, word in uppercase_words._CONTRACTIONS)


def test_the_negated_ascii_classes_match_what_the_unicode_ranges_they_replace_match() -> None:
    import re

    from posttrain.constraints import ifbench_format, uppercase_words

    code_points = [*range(0x3000), 0xD7FF, 0xE000, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    pairs = [
        (uppercase_words._CHUNK_MAYBE_UPPERCASE, re.compile("(?<!\\S)\\S*[A-Z\\x80-\\U0010ffff]\\S*")),
        (ifbench_format._LOWERCASE_THEN_CASED,
         re.compile(r"(?<!\w)[a-z\x80-\U0010ffff]\S*?[A-Za-z\x80-\U0010ffff]")),  # fmt: skip
    ]
    for ours, ranges in pairs:
        for first in code_points:
            for text in (chr(first), f"{chr(first)}a", f"a{chr(first)}", f"b{chr(first)}"):
                assert bool(ours.fullmatch(text)) == bool(ranges.fullmatch(text)), (ranges.pattern, hex(first))
