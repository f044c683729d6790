"""NLTK's punkt sentence splitting (`PunktSentenceTokenizer.tokenize`), the same sentences, several times faster.

NLTK's splitter finds every candidate end (".", "?", "!" before whitespace or punctuation), takes the word before it
and the token after it as a context ("word. Next"), decides whether that context holds a break, then realigns
closing quotes and brackets onto the sentence they close. The decision is the expensive part: NLTK builds
`PunktToken` objects for the context and annotates them in two passes. `SentenceSplitter` runs the same steps on
plain strings and memoises the decision per context: the type-based first pass and the second pass's collocation,
orthographic, frequent-starter and initial/number heuristics (Kiss & Strunk), with the same English parameters and
NLTK's own compiled patterns, so word segmentation and the \\w, \\d and $ semantics of the `regex` engine are NLTK's
by construction. Tests compare sentences and decisions with NLTK's on hypothesis-built texts and a corpus.
"""

from __future__ import annotations

import re
import string
from typing import Any

from nltk.tokenize.punkt import (
    _ORTHO_BEG_LC,
    _ORTHO_LC,
    _ORTHO_MID_UC,
    _ORTHO_UC,
    PunktLanguageVars,
    PunktParameters,
    PunktToken,
)


def unwrapped(pattern: Any) -> Any:
    """The compiled pattern under NLTK's ReDoS timeout wrapper (`nltk.redos.TimedPattern`), when there is one: the
    same engine and pattern without a timer per call (NLTK's patterns used here are linear)."""
    return getattr(pattern, "_rx", pattern)


_LANGUAGE = PunktLanguageVars()
_WORDS = unwrapped(_LANGUAGE._word_tokenizer_re())
_CANDIDATE_ENDS = unwrapped(_LANGUAGE.period_context_re())
# Control characters that Python's str and `re` call whitespace but NLTK's `regex` engine does not (checked over all
# code points: the only difference in \s). Where a text has none, the stdlib engine finds the same candidate ends,
# with less overhead per match.
SEPARATORS_NLTK_DISAGREES_ON = re.compile("[\x1c-\x1f]")
_CANDIDATE_ENDS_STDLIB = re.compile(_CANDIDATE_ENDS.pattern, re.VERBOSE)
_REALIGNMENT = unwrapped(_LANGUAGE.re_boundary_realignment)
_NUMERIC = unwrapped(PunktToken._RE_NUMERIC)
_ELLIPSIS = unwrapped(PunktToken._RE_ELLIPSIS)
_INITIAL = unwrapped(PunktToken._RE_INITIAL)
_SENT_END = frozenset(PunktLanguageVars.sent_end_chars)
_PUNCTUATION = frozenset(";:,.!?")  # PunktSentenceTokenizer.PUNCTUATION
# What a sentence must start with for `_REALIGNMENT` to move it onto the previous one.
_REALIGNED_MARKS = frozenset("\"')]}\u2018\u2019\u201c\u201d\xab\xbb")


class SentenceSplitter:
    """`sentences(text)` == `PunktSentenceTokenizer(params).tokenize(text)`."""

    def __init__(self, params: PunktParameters) -> None:
        self.abbrev_types = params.abbrev_types
        self.collocations = params.collocations
        self.sent_starters = params.sent_starters
        self.ortho_context = params.ortho_context
        self._decisions: dict[str, bool] = {}

    def sentences(self, text: str) -> list[str]:
        return [text[start:end] for start, end in self._realigned(text, self._breaks(text))]

    def clear(self) -> None:
        self._decisions.clear()

    def _breaks(self, text: str) -> list[tuple[int, int]]:
        """NLTK's `_slices_from_text`: a span up to each candidate end whose context holds a break, then the rest."""
        spans = []
        last_break = 0
        decisions = self._decisions
        for context, end, next_start in _candidate_contexts(text):
            decision = decisions.get(context)
            if decision is None:
                if len(decisions) > 1 << 14:  # bounded like the other caches of text measures
                    decisions.clear()
                decision = decisions[context] = self.contains_break(context)
            if decision:
                spans.append((last_break, end))
                last_break = next_start if next_start >= 0 else end
        spans.append((last_break, len(text.rstrip())))
        return spans

    @staticmethod
    def _realigned(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """NLTK's `_realign_boundaries`: closing quotes and brackets after a break move to the sentence they close;
        empty spans are dropped."""
        realigned = []
        shift = 0
        for (start, end), following in zip(spans, [*spans[1:], None], strict=True):
            start += shift
            if following is None:
                if start < end:
                    realigned.append((start, end))
                continue
            closing = None
            if following[0] < following[1] and text[following[0]] in _REALIGNED_MARKS:
                closing = _REALIGNMENT.match(text[following[0] : following[1]])
            if closing:
                realigned.append((start, following[0] + len(closing.group(0).rstrip())))
                shift = closing.end()
            else:
                shift = 0
                if start < end:
                    realigned.append((start, end))
        return realigned

    def contains_break(self, context: str) -> bool:
        """`PunktSentenceTokenizer.text_contains_sentbreak(context)`, unmemoised."""
        # Punkt's word tokens, line by line; blank lines (by str.strip, as NLTK) give none.
        tokens = [token for line in context.split("\n") if line.strip() for token in _WORDS.findall(line)]
        # True when a token other than the last is a break after the second pass, which looks one token ahead and
        # only reconsiders tokens ending in a period (the others keep their first-pass verdict: "?" and "!" break).
        for i in range(len(tokens) - 1):
            token = tokens[i]
            if not token.endswith("."):
                if token in _SENT_END:
                    return True
            elif self._second_pass(token, self._first_pass(token), tokens[i + 1], self._first_pass(tokens[i + 1])):
                return True
        return False

    def _first_pass(self, token: str) -> tuple[bool, bool, bool]:
        """(sentbreak, abbr, ellipsis) from the token's type alone."""
        if token in _SENT_END:
            return True, False, False
        if _ELLIPSIS.match(token):
            return False, False, True
        if token.endswith(".") and not token.endswith(".."):
            stem = token[:-1].lower()
            if stem in self.abbrev_types or stem.split("-")[-1] in self.abbrev_types:
                return False, True, False
            return True, False, False
        return False, False, False

    def _second_pass(self, token: str, annotation: tuple[bool, bool, bool], following: str,
                     following_annotation: tuple[bool, bool, bool]) -> bool:  # fmt: skip
        """Whether `token`, which ends in a period, ends a sentence, given the next token (its first-pass annotation
        only, as in NLTK)."""
        sentbreak, abbr, ellipsis = annotation
        kind = _without_period(_type(token))
        following_type = _type(following)
        if following_annotation[0]:
            following_type = _without_period(following_type)
        is_initial = _INITIAL.match(token) is not None
        if (kind, following_type) in self.collocations:
            return False
        if (abbr or ellipsis) and not is_initial:
            starts = self._starts_sentence(following, following_type)
            if starts is True:
                return True
            if following[0].isupper() and following_type in self.sent_starters:
                return True
        if is_initial or kind == "##number##":
            starts = self._starts_sentence(following, following_type)
            if starts is False:
                return False
            if (starts is None and is_initial and following[0].isupper()
                    and not self.ortho_context.get(following_type, 0) & _ORTHO_LC):  # fmt: skip
                return False
        return sentbreak

    def _starts_sentence(self, token: str, kind: str) -> bool | None:
        """Punkt's orthographic heuristic: True, False, or None for NLTK's "unknown"."""
        if token in _PUNCTUATION:
            return False
        context = self.ortho_context.get(kind, 0)
        if token[0].isupper() and context & _ORTHO_LC and not context & _ORTHO_MID_UC:
            return True
        if token[0].islower() and (context & _ORTHO_UC or not context & _ORTHO_BEG_LC):
            return False
        return None


def _type(token: str) -> str:
    return str(_NUMERIC.sub("##number##", token.lower()))


def _without_period(kind: str) -> str:
    return kind[:-1] if len(kind) > 1 and kind[-1] == "." else kind


def _candidate_contexts(text: str) -> list[tuple[str, int, int]]:
    """NLTK's `_match_potential_end_contexts`: for each candidate end, its context (the word before it, from the last
    whitespace but never reaching back into the previous candidate's word, + the end + what follows), where the end
    mark ends and where the next token starts (-1 for none). A candidate whose word overlaps the next candidate's is
    dropped, as in NLTK."""
    found = []
    spaces = [char for char in string.whitespace if char in text]  # the characters NLTK's loop looks for
    previous = None  # the previous candidate's group spans: (end mark, after_tok, next_tok)
    previous_start = previous_end = 0  # the previous candidate's word
    candidate_ends = _CANDIDATE_ENDS if SEPARATORS_NLTK_DISAGREES_ON.search(text) else _CANDIDATE_ENDS_STDLIB
    for match in candidate_ends.finditer(text):
        spans = match.regs
        start = spans[0][0]
        if len(spaces) == 1:
            last_space = text.rfind(spaces[0], previous_end, start)
        else:
            last_space = max([text.rfind(char, previous_end, start) for char in spaces], default=-1)
        # NLTK's `_get_last_whitespace_index` answers 0 both for "none" and for "at the region's first character".
        word_start = last_space + 1 if last_space > previous_end else previous_start
        if previous is not None and previous_end <= word_start:
            found.append((text[previous_start : previous[1][1]], previous[0][1], previous[2][0]))
        previous = spans
        previous_start, previous_end = word_start, start
    if previous is not None:
        found.append((text[previous_start : previous[1][1]], previous[0][1], previous[2][0]))
    return found
