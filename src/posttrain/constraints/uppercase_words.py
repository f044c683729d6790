"""How many tokens of NLTK's word tokenizer are uppercase in one sentence, tokenizing as little as possible.

IFEval's `capital_word_frequency` counts the `isupper()` tokens of `nltk.word_tokenize`, and NLTK's improved Treebank
tokenizer is ~30 regular-expression passes over the sentence: the slow part on long responses. Two facts about that
tokenizer let most of the text skip it, exactly:

1. It only inserts spaces (and rewrites quote marks), so every token lies inside one whitespace-separated chunk, and
   it splits between two letters only at `_LETTER_SPLITS` (n't, 'tis, cannot, gonna ...); every other split is next
   to a mark that is not a letter. So a chunk where each uppercase character is directly followed by a lowercase one
   gives no uppercase token, and an ASCII chunk of `_ONE_UPPERCASE_TOKEN`'s shape gives exactly one, wherever it
   stands.
2. Its rules look at most one character beyond a chunk: the whitespace character next to it (space, newline ...), or
   the start of the sentence. Only the end of the sentence reaches further: the final-period rule sees through
   trailing closing marks. So any other chunk is tokenized between its own two neighbouring characters, with
   sentinel words beyond them; a chunk followed only by closing marks is tokenized with the rest of the sentence.
   The distinct chunks of a text are tokenized in one call, separated by the sentinels, and remembered.

The tokenizer itself (`treebank_tokenize`) is NLTK's passes in NLTK's order, without `nltk.redos`'s timer, skipping
each pass whose matches all contain a literal the text lacks.

`tests/constraints/test_uppercase_words.py` compares the count with NLTK's tokenizer run on every sentence, and
`treebank_tokenize` with NLTK's, on hypothesis-built text made of what each rule keys on (quotes, clitics, periods,
brackets, contractions, every kind of whitespace, non-ASCII case).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from nltk.tokenize.destructive import NLTKWordTokenizer

from posttrain.constraints.sentence_split import SEPARATORS_NLTK_DISAGREES_ON, unwrapped

_NLTK = NLTKWordTokenizer


# For each pass of NLTK's tokenizer, literals one of which every match contains (keyed by NLTK's pattern source; a
# pattern not listed always runs). A pass that cannot match is skipped: the text stays what that pass would leave.
_NEEDS: dict[str, tuple[str, ...]] = {
    "([«“‘„]|[`]+)": tuple("«“‘„`"),
    '^\\"': ('"',),
    "(``)": ("``",),
    '([ \\(\\[{<])(\\"|\\\'{2})': ('"', "''"),
    "(?i)(?<!\\w)(\\')(?!(?:re|ve|ll|m|t|s|d|n)\\b)(?=\\w)": ("'",),
    '([^\\.])(\\.)([\\]\\)}>"\\\'»”’ ]*+)\\s*$': (".",),
    "([:,])([^\\d])": (":", ","),
    "([:,])$": (":", ","),
    "\\.{2,}": ("..",),
    "[;@#$%&]": tuple(";@#$%&"),
    "[\\u2012-\\u2015]": tuple("\u2012\u2013\u2014\u2015"),
    '([^\\.])(\\.)([\\]\\)}>"\\\']*)\\s*$': (".",),
    "[?!]": ("?", "!"),
    "([^'])' ": ("' ",),
    "[*]": ("*",),
    "[\\]\\[\\(\\)\\{\\}\\<\\>]": tuple("][(){}<>"),
    "--": ("--",),
    "([»”’])": tuple("»”’"),
    "''": ("''",),
    '"': ('"',),
    "([^' ])('[sS]|'[mM]|'[dD]|') ": ("'",),
    "([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ": ("'",),
}
# The contractions match case-insensitively; in ASCII text that is a lowercase substring.
_CONTRACTION_WORDS = {
    "(?i)\\b(can)(?#X)(not)\\b": "cannot",
    "(?i)\\b(d)(?#X)('ye)\\b": "d'ye",
    "(?i)\\b(gim)(?#X)(me)\\b": "gimme",
    "(?i)\\b(gon)(?#X)(na)\\b": "gonna",
    "(?i)\\b(got)(?#X)(ta)\\b": "gotta",
    "(?i)\\b(lem)(?#X)(me)\\b": "lemme",
    "(?i)\\b(more)(?#X)('n)\\b": "more'n",
    "(?i)\\b(wan)(?#X)(na)(?=\\s)": "wanna",
    "(?i) ('t)(?#X)(is)\\b": "'tis",
    "(?i) ('t)(?#X)(was)\\b": "'twas",
}
_BEFORE_PADDING = [
    (unwrapped(pattern), replacement, _NEEDS.get(unwrapped(pattern).pattern))
    for pattern, replacement in [*_NLTK.STARTING_QUOTES, *_NLTK.PUNCTUATION, _NLTK.PARENS_BRACKETS, _NLTK.DOUBLE_DASHES]
]
_AFTER_PADDING = [(unwrapped(p), r, _NEEDS.get(unwrapped(p).pattern)) for p, r in _NLTK.ENDING_QUOTES]
_CONTRACTIONS = [
    (unwrapped(p), _CONTRACTION_WORDS.get(unwrapped(p).pattern)) for p in [*_NLTK.CONTRACTIONS2, *_NLTK.CONTRACTIONS3]
]


def treebank_tokenize(text: str) -> list[str]:
    """`NLTKWordTokenizer().tokenize(text)`: NLTK's passes in NLTK's order, skipping those that cannot match."""
    for pattern, replacement, needs in _BEFORE_PADDING:
        if needs is None or any(literal in text for literal in needs):
            text = pattern.sub(replacement, text)
    text = " " + text + " "
    for pattern, replacement, needs in _AFTER_PADDING:
        if needs is None or any(literal in text for literal in needs):
            text = pattern.sub(replacement, text)
    lowered = text.lower() if text.isascii() else None  # passes only insert spaces: no contraction appears later
    for pattern, word in _CONTRACTIONS:
        if word is None or lowered is None or word in lowered:
            text = pattern.sub(r" \1 \2 ", text)
    return text.split()


# Whole chunks holding an ASCII capital or any non-ASCII character (the lookbehind keeps the scan linear); the class
# is [A-Z\x80-\U0010ffff] written as a negated ASCII class, which compiles in 0.1 ms where the range took 3.
_CHUNK_MAYBE_UPPERCASE = re.compile("(?<!\\S)\\S*[^\\x00-@\\[-\\x7f]\\S*")
_CAPITAL_THEN_NOT_LOWER = re.compile(r"[A-Z](?![a-z])")
_LETTER_SPLITS = re.compile(r"'t|cannot|gimme|gonna|gotta|lemme|wanna")
# ASCII chunks that always give exactly one uppercase token: opening marks, an uppercase word or acronym (NASA, U.S,
# B2B) with trailing marks, or "I" with a lowercase clitic the tokenizer always splits off ("I'm" -> I, 'm) before
# closing marks. Every mark here becomes a token of its own; periods are split off or stay on the word. (No two
# adjacent parts share a character, so a failed match is linear: hence the lookahead, not [A-Z0-9]*[A-Z][A-Z0-9]*.)
_ONE_UPPERCASE_TOKEN = re.compile(
    r"""[(\[{<"*]*(?:(?=[0-9]*[A-Z])[A-Z0-9]+(?:\.[A-Z0-9]+)*[)\]}>"*.,;:!?]*|I'(?:m|ll|d|ve)[)\]}>"*,;:!?]*)"""
)
# What may follow a chunk for the final-period rule (`([^\.])(\.)([\]\)}>"\'»”’ ]*+)\s*$`) to reach it.
_CLOSERS_TO_END = re.compile("[\\s\\]\\)}>\"'»”’]*\\Z")

# (the character before the chunk or "" at the sentence start, the chunk, the character after it or, when the
# final-period rule can reach the chunk, the rest of the sentence, whether it is the latter)
_Piece = tuple[str, str, str, bool]
_PIECE_COUNTS: dict[_Piece, int] = {}
_MAX_REMEMBERED = 1 << 14  # keys hold chunks, which can be long: bounded like the other caches


def count_uppercase_tokens(sentences: Iterable[str]) -> int:
    """`sum(token.isupper() for s in sentences for token in NLTKWordTokenizer().tokenize(s))`."""
    count = 0
    pieces: list[_Piece] = []
    for known, left in map(_shape, sentences):
        count += known
        if left:
            pieces.extend(left)
    _tokenize_new(pieces)
    return count + sum(map(_PIECE_COUNTS.__getitem__, pieces))


@functools.lru_cache(maxsize=1 << 14)
def _shape(sentence: str) -> tuple[int, tuple[_Piece, ...]]:
    """The uppercase tokens counted from chunk shapes, and the pieces left to the tokenizer."""
    if SEPARATORS_NLTK_DISAGREES_ON.search(sentence):
        return 0, (("", sentence, "", True),)
    known = 0
    pieces = []
    for match in _CHUNK_MAYBE_UPPERCASE.finditer(sentence):
        chunk = match.group()
        counted = _count_from_shape(chunk)
        if counted is not None:
            known += counted
            continue
        start, end = match.span()
        before = sentence[start - 1] if start else ""
        if _CLOSERS_TO_END.match(sentence, end):
            pieces.append((before, chunk, sentence[end:], True))
        else:
            pieces.append((before, chunk, sentence[end], False))
    return known, tuple(pieces)


def clear() -> None:
    _shape.cache_clear()
    _count_from_shape.cache_clear()
    _PIECE_COUNTS.clear()


@functools.lru_cache(maxsize=1 << 14)
def _count_from_shape(chunk: str) -> int | None:
    """The chunk's uppercase tokens when fact 1 decides them, else None."""
    if not chunk.isascii():
        return 0 if _capitals_share_tokens(chunk) else None
    if _LETTER_SPLITS.search(chunk.lower()):
        return None
    if _CAPITAL_THEN_NOT_LOWER.search(chunk) is None:
        return 0
    return 1 if _ONE_UPPERCASE_TOKEN.fullmatch(chunk) else None


def _capitals_share_tokens(chunk: str) -> bool:
    """Each uppercase character is directly followed by a lowercase one that no letter split can separate from it."""
    if _LETTER_SPLITS.search(chunk.lower()):
        return False
    return all(chunk[i + 1 : i + 2].islower() for i, char in enumerate(chunk) if char.isupper())


def _tokenize_new(pieces: list[_Piece]) -> None:
    """Count the pieces not seen before: mid-sentence ones in one tokenizer call, the others one by one."""
    if len(_PIECE_COUNTS) > _MAX_REMEMBERED:
        _PIECE_COUNTS.clear()
    new = [piece for piece in dict.fromkeys(pieces) if piece not in _PIECE_COUNTS]
    sentinel = _sentinel(new)
    middle = [piece for piece in new if piece[0] and not piece[3]]
    if middle:
        text = f"{sentinel} " + f"{sentinel} ".join(before + chunk + after for before, chunk, after, _ in middle)
        groups = _split_at(treebank_tokenize(text + sentinel), sentinel)
        if len(groups) == len(middle):  # always, by construction; otherwise the pieces are tokenized one by one
            _PIECE_COUNTS.update(zip(middle, map(_count, groups), strict=True))
    for piece in new:
        if piece not in _PIECE_COUNTS:
            before, chunk, after, ends_sentence = piece
            text = (f"{sentinel} {before}" if before else "") + chunk + after + ("" if ends_sentence else sentinel)
            _PIECE_COUNTS[piece] = _count(treebank_tokenize(text))


def _sentinel(pieces: list[_Piece]) -> str:
    """A lowercase word that no rule touches and no chunk contains, so its tokens are exactly the separators."""
    chunks = " ".join(piece[1] for piece in pieces)
    sentinel = "qq"
    while sentinel in chunks:
        sentinel += "q"
    return sentinel


def _split_at(tokens: list[str], sentinel: str) -> list[list[str]]:
    groups: list[list[str]] = []
    for token in tokens:
        if token == sentinel:
            groups.append([])
        elif groups:
            groups[-1].append(token)
    return groups[:-1]


def _count(tokens: list[str]) -> int:
    return sum(map(str.isupper, tokens))
