"""Which constraints cannot be asked for together: IFEval's INSTRUCTION_CONFLICTS, symmetrised, plus our additions.

The table is by id only (kwargs-dependent clashes, such as "at least 300 words" with "fewer than 5 sentences", are the
prompt builder's job). As in the reference's `conflict_make`, every id conflicts with itself and the relation is made
symmetric.
"""

from __future__ import annotations

from posttrain.constraints.base import REGISTRY

EVERY = "*"  # shorthand for "all registered ids"

# The reference's table, verbatim in content (the `set(INSTRUCTION_DICT)` entries are written as EVERY minus ...).
IFEVAL_CONFLICTS: dict[str, set[str]] = {
    "keywords:existence": {"keywords:existence"},
    "keywords:frequency": {"keywords:frequency"},
    "keywords:forbidden_words": {"keywords:forbidden_words"},
    "keywords:letter_frequency": {"keywords:letter_frequency"},
    "language:response_language": {
        "language:response_language", "detectable_format:multiple_sections", "keywords:existence",
        "keywords:frequency", "keywords:forbidden_words", "startend:end_checker", "change_case:english_capital",
        "change_case:english_lowercase",
    },
    "length_constraints:number_sentences": {"length_constraints:number_sentences"},
    "length_constraints:number_paragraphs": {
        "length_constraints:number_paragraphs", "length_constraints:nth_paragraph_first_word",
        "length_constraints:number_sentences",
    },
    "length_constraints:number_words": {"length_constraints:number_words"},
    "length_constraints:nth_paragraph_first_word": {
        "length_constraints:nth_paragraph_first_word", "length_constraints:number_paragraphs",
    },
    "detectable_content:number_placeholders": {"detectable_content:number_placeholders"},
    "detectable_content:postscript": {"detectable_content:postscript"},
    "detectable_format:number_bullet_lists": {"detectable_format:number_bullet_lists"},
    "detectable_format:constrained_response": {EVERY},
    "detectable_format:number_highlighted_sections": {"detectable_format:number_highlighted_sections"},
    "detectable_format:multiple_sections": {
        "detectable_format:multiple_sections", "language:response_language",
        "detectable_format:number_highlighted_sections",
    },
    "detectable_format:json_format": {EVERY, "-keywords:forbidden_words", "-keywords:existence"},
    "detectable_format:title": {"detectable_format:title"},
    "combination:two_responses": {
        EVERY, "-keywords:forbidden_words", "-keywords:existence", "-language:response_language",
        "-detectable_format:title", "-punctuation:no_comma",
    },
    "combination:repeat_prompt": {EVERY, "-keywords:existence", "-detectable_format:title", "-punctuation:no_comma"},
    "startend:end_checker": {"startend:end_checker"},
    "change_case:capital_word_frequency": {
        "change_case:capital_word_frequency", "change_case:english_lowercase", "change_case:english_capital",
    },
    "change_case:english_capital": {"change_case:english_capital"},
    "change_case:english_lowercase": {"change_case:english_lowercase", "change_case:english_capital"},
    "punctuation:no_comma": {"punctuation:no_comma"},
    "startend:quotation": {"startend:quotation", "detectable_format:title"},
}  # fmt: skip

# Clashes the reference table misses.
EXTRA_CONFLICTS: dict[str, set[str]] = {
    # Section headers ("Section 1", "SECTION 1") need a capital letter; an all-lowercase response has none.
    "change_case:english_lowercase": {"detectable_format:multiple_sections"},
}


def _expand(targets: set[str]) -> set[str]:
    if EVERY not in targets:
        return set(targets)
    return set(REGISTRY) - {t[1:] for t in targets if t.startswith("-")}


def build_conflicts() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {cid: {cid} for cid in REGISTRY}
    for source in (IFEVAL_CONFLICTS, EXTRA_CONFLICTS):
        for cid, targets in source.items():
            for other in _expand(targets):
                table[cid].add(other)
                table[other].add(cid)
    return {cid: frozenset(others) for cid, others in table.items()}


def install_conflicts() -> None:
    """Set `Constraint.conflicts` on every registered class (called once, after all constraint modules loaded)."""
    for cid, others in build_conflicts().items():
        REGISTRY[cid].conflicts = others
