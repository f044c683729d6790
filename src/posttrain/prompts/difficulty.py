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

BASE: dict[str, float] = {
    "change_case:english_capital": 0.30,
    "change_case:english_lowercase": 0.30,
    "change_case:capital_word_frequency": 0.25,
    "punctuation:no_comma": 0.30,
    "detectable_format:json_format": 0.20,
    "startend:quotation": 0.15,
    "combination:two_responses": 0.25,
    "combination:repeat_prompt": 0.30,
    "language:response_language": 0.15,
    "length_constraints:number_paragraphs": 0.30,
    "length_constraints:nth_paragraph_first_word": 0.35,
    "length_constraints:number_sentences": 0.25,
    "length_constraints:number_words": 0.20,
    "detectable_format:number_bullet_lists": 0.20,
    "detectable_format:multiple_sections": 0.15,
    "detectable_format:number_highlighted_sections": 0.10,
    "detectable_content:number_placeholders": 0.15,
    "detectable_content:postscript": 0.08,
    "detectable_format:title": 0.08,
    "detectable_format:constrained_response": 0.08,
    "keywords:existence": 0.08,
    "keywords:frequency": 0.15,
    "keywords:forbidden_words": 0.10,
    "keywords:letter_frequency": 0.20,
    "startend:end_checker": 0.10,
}
DEFAULT_BASE = 0.15  # a constraint id this table does not know (e.g. an added IFBench type)


def tightness(cid: str, kw: dict[str, Any]) -> float:
    """How demanding the kwargs make a constraint, relative to its typical setting (1.0)."""
    def n(key: str, default: float = 1.0) -> float:
        value = kw.get(key)
        return float(value) if isinstance(value, (int, float)) else default

    if cid in ("length_constraints:number_paragraphs", "detectable_format:number_bullet_lists"):
        return 0.8 + 0.08 * n("num_paragraphs" if "paragraph" in cid else "num_bullets", 3)
    if cid == "length_constraints:nth_paragraph_first_word":
        return 0.8 + 0.08 * n("num_paragraphs", 3)
    if cid == "length_constraints:number_words":
        size = n("num_words", 300) / 300
        return 0.7 + 0.3 * size if kw.get("relation") == "at least" else 0.7 + 0.3 / max(size, 0.1)
    if cid == "length_constraints:number_sentences":
        size = n("num_sentences", 10) / 10
        return 0.7 + 0.3 * size if kw.get("relation") == "at least" else 0.7 + 0.3 / max(size, 0.1)
    if cid in ("detectable_format:multiple_sections", "detectable_format:number_highlighted_sections",
               "detectable_content:number_placeholders"):  # fmt: skip
        key = {"detectable_format:multiple_sections": "num_sections",
               "detectable_format:number_highlighted_sections": "num_highlights"}.get(cid, "num_placeholders")  # fmt: skip
        return 0.8 + 0.1 * n(key, 2)
    if cid == "keywords:frequency":
        return 0.8 + 0.1 * n("frequency", 2) if kw.get("relation") == "at least" else 0.8
    if cid == "keywords:letter_frequency":
        return 0.8 + 0.02 * n("let_frequency", 10) if kw.get("let_relation") == "at least" else 1.2
    if cid == "change_case:capital_word_frequency":
        return 0.8 + 0.04 * n("capital_frequency", 5) if kw.get("capital_relation") == "at least" else 1.0
    if cid == "keywords:forbidden_words":
        return 0.8 + 0.2 * len(kw.get("forbidden_words") or [1])
    if cid == "keywords:existence":
        return 0.8 + 0.2 * len(kw.get("keywords") or [1])
    return 1.0


def constraint_hardness(cid: str, kw: dict[str, Any]) -> float:
    return min(0.95, max(0.02, BASE.get(cid, DEFAULT_BASE) * tightness(cid, kw)))


def difficulty(ids: list[str], kwargs: list[dict[str, Any]]) -> float:
    miss_none = math.prod(1.0 - constraint_hardness(cid, kw or {}) for cid, kw in zip(ids, kwargs, strict=True))
    return round(1.0 - miss_none, 4)
