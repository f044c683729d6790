"""Splitting an answer into the fragments HALT checks one by one, with their place in the answer.

A fragment keeps its character span in the answer, so a target cut at fragment i is exactly the answer's
text before it (the model's own words, unedited). Text after the abstention marker is not part of the
answer: a model trained with HALT stops being responsible there.

- math (ordered): lines, then sentences; a piece without a digit (connecting prose) has no claim to check
  and is joined to the next fragment (trailing prose to the last one).
- text (unordered): sentences; every non-empty sentence is a fragment (a fact to grade).
- code: see `halt/code.py` (top-level functions of the answer's code block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER = "Unsure from here."
# The paper's abstract writes "Unsure from Here", its first author's thread "Unsure from here": match either.
MARKER_PATTERN = re.compile(r"unsure\s+from\s+here", re.IGNORECASE)

_LINE = re.compile(r"[^\n]+")
# A sentence ends at . ! or ? followed by space and a capital letter, so "2.5" and "e.g. the" stay whole.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Fragment:
    text: str
    start: int  # span in the answer: answer[start:end] == text
    end: int
    name: str = ""  # code: the function the fragment defines


def before_marker(answer: str) -> tuple[str, bool]:
    """(the answer up to the abstention marker, whether the marker was there)."""
    found = MARKER_PATTERN.search(answer)
    return (answer[: found.start()], True) if found else (answer, False)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every sentence of every line, surrounding whitespace excluded."""
    spans = []
    for line in _LINE.finditer(text):
        start = line.start()
        pieces = [*(m.start() for m in _SENTENCE_BREAK.finditer(line.group())), len(line.group())]
        for cut in pieces:
            piece = line.group()[start - line.start() : cut]
            stripped = piece.strip()
            if stripped:
                first = start + piece.index(stripped[0])
                spans.append((first, first + len(stripped)))
            start = line.start() + cut
    return spans


def split_sentences(answer: str) -> list[Fragment]:
    """Unordered domains: every sentence before the marker is a fragment."""
    visible, _ = before_marker(answer)
    return [Fragment(visible[s:e], s, e) for s, e in sentence_spans(visible)]


def split_math_steps(answer: str) -> list[Fragment]:
    """Ordered math steps: sentences with a number are the claims; prose between them joins the next claim."""
    visible, _ = before_marker(answer)
    fragments: list[Fragment] = []
    pending: int | None = None  # start of prose waiting for the next claim
    for start, end in sentence_spans(visible):
        if not _DIGIT.search(visible[start:end]):
            pending = start if pending is None else pending
            continue
        begin = start if pending is None else pending
        fragments.append(Fragment(visible[begin:end], begin, end))
        pending = None
    if pending is not None and fragments:  # closing prose ("Hope this helps!") belongs to the last step
        last = fragments[-1]
        end = sentence_spans(visible)[-1][1]
        fragments[-1] = Fragment(visible[last.start : end], last.start, end)
    return fragments
