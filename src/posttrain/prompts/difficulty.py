"""A difficulty score per prompt, from its constraints alone (so it also scores IFEval's or anyone's prompts).

    h_i        = clip(BASE[id_i] * tightness(id_i, kwargs_i), 0.02, 0.95)
    difficulty = 1 - prod_i (1 - h_i)

h_i reads as "the chance a capable model misses constraint i", and the difficulty as the chance it misses at least
one of them if misses were independent. So difficulty grows with the number of constraints (the paper's main
difficulty axis) and with how demanding each one is; it lies in [0, 1) and 0 means no constraints.

BASE is hand-set, not calibrated: global constraints that govern every token of the answer (case, no commas,
JSON, quoting) and exact counts sit above local markers (a title, a P.S.). `tightness` scales a count by how far it
is from easy: exact counts get harder with size, "at least" counts with the number asked, word/sentence limits
with their size relative to a 300-word answer. Recalibrating BASE from judged samples is a natural extension.
"""

from __future__ import annotations

import math
from typing import Any

from posttrain.constraint_ids import (
    AT_LEAST,
    CAPITAL_WORD_FREQUENCY,
    CONSTRAINED_RESPONSE,
    END_CHECKER,
    ENGLISH_CAPITAL,
    ENGLISH_LOWERCASE,
    FORBIDDEN_WORDS,
    JSON_FORMAT,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LETTER_FREQUENCY,
    MULTIPLE_SECTIONS,
    NO_COMMA,
    NTH_PARAGRAPH_FIRST_WORD,
    NUMBER_BULLET_LISTS,
    NUMBER_HIGHLIGHTED_SECTIONS,
    NUMBER_PARAGRAPHS,
    NUMBER_PLACEHOLDERS,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
    POSTSCRIPT,
    QUOTATION,
    REPEAT_PROMPT,
    RESPONSE_LANGUAGE,
    TITLE,
    TWO_RESPONSES,
)

BASE: dict[str, float] = {
    ENGLISH_CAPITAL: 0.30,
    ENGLISH_LOWERCASE: 0.30,
    CAPITAL_WORD_FREQUENCY: 0.25,
    NO_COMMA: 0.30,
    JSON_FORMAT: 0.20,
    QUOTATION: 0.15,
    TWO_RESPONSES: 0.25,
    REPEAT_PROMPT: 0.30,
    RESPONSE_LANGUAGE: 0.15,
    NUMBER_PARAGRAPHS: 0.30,
    NTH_PARAGRAPH_FIRST_WORD: 0.35,
    NUMBER_SENTENCES: 0.25,
    NUMBER_WORDS: 0.20,
    NUMBER_BULLET_LISTS: 0.20,
    MULTIPLE_SECTIONS: 0.15,
    NUMBER_HIGHLIGHTED_SECTIONS: 0.10,
    NUMBER_PLACEHOLDERS: 0.15,
    POSTSCRIPT: 0.08,
    TITLE: 0.08,
    CONSTRAINED_RESPONSE: 0.08,
    KEYWORD_EXISTENCE: 0.08,
    KEYWORD_FREQUENCY: 0.15,
    FORBIDDEN_WORDS: 0.10,
    LETTER_FREQUENCY: 0.20,
    END_CHECKER: 0.10,
}
DEFAULT_BASE = 0.15  # a constraint id this table does not know (e.g. an added IFBench type)
# "At least n" markers (sections, highlights, placeholders): the kwarg holding n, which sets their tightness.
MARKER_COUNT_KEY = {
    MULTIPLE_SECTIONS: "num_sections",
    NUMBER_HIGHLIGHTED_SECTIONS: "num_highlights",
    NUMBER_PLACEHOLDERS: "num_placeholders",
}


def tightness(cid: str, kw: dict[str, Any]) -> float:
    """How demanding the kwargs make a constraint, relative to its typical setting (1.0)."""
    def n(key: str, default: float = 1.0) -> float:
        value = kw.get(key)
        return float(value) if isinstance(value, (int, float)) else default

    if cid in (NUMBER_PARAGRAPHS, NTH_PARAGRAPH_FIRST_WORD):
        return 0.8 + 0.08 * n("num_paragraphs", 3)
    if cid == NUMBER_BULLET_LISTS:
        return 0.8 + 0.08 * n("num_bullets", 3)
    if cid == NUMBER_WORDS:
        size = n("num_words", 300) / 300
        return 0.7 + 0.3 * size if kw.get("relation") == AT_LEAST else 0.7 + 0.3 / max(size, 0.1)
    if cid == NUMBER_SENTENCES:
        size = n("num_sentences", 10) / 10
        return 0.7 + 0.3 * size if kw.get("relation") == AT_LEAST else 0.7 + 0.3 / max(size, 0.1)
    if cid in MARKER_COUNT_KEY:
        return 0.8 + 0.1 * n(MARKER_COUNT_KEY[cid], 2)
    if cid == KEYWORD_FREQUENCY:
        return 0.8 + 0.1 * n("frequency", 2) if kw.get("relation") == AT_LEAST else 0.8
    if cid == LETTER_FREQUENCY:
        return 0.8 + 0.02 * n("let_frequency", 10) if kw.get("let_relation") == AT_LEAST else 1.2
    if cid == CAPITAL_WORD_FREQUENCY:
        return 0.8 + 0.04 * n("capital_frequency", 5) if kw.get("capital_relation") == AT_LEAST else 1.0
    if cid == FORBIDDEN_WORDS:
        return 0.8 + 0.2 * len(kw.get("forbidden_words") or [1])
    if cid == KEYWORD_EXISTENCE:
        return 0.8 + 0.2 * len(kw.get("keywords") or [1])
    return 1.0


def constraint_hardness(cid: str, kw: dict[str, Any]) -> float:
    return min(0.95, max(0.02, BASE.get(cid, DEFAULT_BASE) * tightness(cid, kw)))


def difficulty(ids: list[str], kwargs: list[dict[str, Any]]) -> float:
    miss_none = math.prod(1.0 - constraint_hardness(cid, kw or {}) for cid, kw in zip(ids, kwargs, strict=True))
    return round(1.0 - miss_none, 4)
