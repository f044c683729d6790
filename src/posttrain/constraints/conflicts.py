"""Which constraints cannot be asked for together: IFEval's INSTRUCTION_CONFLICTS, symmetrised, plus our additions.

The table is by id only (kwargs-dependent clashes, such as "at least 300 words" with "fewer than 5 sentences", are the
prompt builder's job). As in the reference's `conflict_make`, every id conflicts with itself and the relation is made
symmetric.
"""

from __future__ import annotations

from posttrain.constraint_ids import (
    CAPITAL_WORD_FREQUENCY,
    CHARACTER_REVERSE_ORDER,
    CITY_CSV,
    CONSTRAINED_RESPONSE,
    DATE_FORMAT_LIST,
    END_CHECKER,
    ENGLISH_CAPITAL,
    ENGLISH_LOWERCASE,
    EUROPEAN_CAPITALS_SORT,
    FORBIDDEN_WORDS,
    JSON_FORMAT,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LETTER_FREQUENCY,
    MULTIPLE_CHOICE_QUESTIONS,
    MULTIPLE_SECTIONS,
    NO_COMMA,
    NO_WHITESPACE,
    NTH_PARAGRAPH_FIRST_WORD,
    NUMBER_BULLET_LISTS,
    NUMBER_HIGHLIGHTED_SECTIONS,
    NUMBER_PARAGRAPHS,
    NUMBER_PLACEHOLDERS,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
    OUTPUT_TEMPLATE,
    POSTSCRIPT,
    PRINT_MULTIPLES,
    QUOTATION,
    QUOTES_CSV,
    REPEAT_CHANGE,
    REPEAT_PROMPT,
    REPEAT_SIMPLE,
    REPEAT_SPAN,
    RESPONSE_LANGUAGE,
    REVERSE_NEWLINE,
    SENTENCE_ALPHABET,
    SPECIAL_CHARACTER_CSV,
    TITLE,
    TWO_RESPONSES,
    WORD_REVERSE_ORDER,
)
from posttrain.constraints.base import REGISTRY

EVERY = "*"  # shorthand for "all registered ids"
EXCEPT = "-"  # prefix of an id that an EVERY entry leaves out


def _every_but(*excluded: str) -> set[str]:
    """The reference's `set(INSTRUCTION_DICT).difference({...})` entries; resolved against the registry by `_expand`,
    so they also cover constraints registered after IFEval's own."""
    return {EVERY, *(EXCEPT + cid for cid in excluded)}


# The reference's table, verbatim in content.
IFEVAL_CONFLICTS: dict[str, set[str]] = {
    KEYWORD_EXISTENCE: {KEYWORD_EXISTENCE},
    KEYWORD_FREQUENCY: {KEYWORD_FREQUENCY},
    FORBIDDEN_WORDS: {FORBIDDEN_WORDS},
    LETTER_FREQUENCY: {LETTER_FREQUENCY},
    RESPONSE_LANGUAGE: {
        RESPONSE_LANGUAGE, MULTIPLE_SECTIONS, KEYWORD_EXISTENCE, KEYWORD_FREQUENCY, FORBIDDEN_WORDS, END_CHECKER,
        ENGLISH_CAPITAL, ENGLISH_LOWERCASE,
    },
    NUMBER_SENTENCES: {NUMBER_SENTENCES},
    NUMBER_PARAGRAPHS: {NUMBER_PARAGRAPHS, NTH_PARAGRAPH_FIRST_WORD, NUMBER_SENTENCES},
    NUMBER_WORDS: {NUMBER_WORDS},
    NTH_PARAGRAPH_FIRST_WORD: {NTH_PARAGRAPH_FIRST_WORD, NUMBER_PARAGRAPHS},
    NUMBER_PLACEHOLDERS: {NUMBER_PLACEHOLDERS},
    POSTSCRIPT: {POSTSCRIPT},
    NUMBER_BULLET_LISTS: {NUMBER_BULLET_LISTS},
    CONSTRAINED_RESPONSE: _every_but(),
    NUMBER_HIGHLIGHTED_SECTIONS: {NUMBER_HIGHLIGHTED_SECTIONS},
    MULTIPLE_SECTIONS: {MULTIPLE_SECTIONS, RESPONSE_LANGUAGE, NUMBER_HIGHLIGHTED_SECTIONS},
    JSON_FORMAT: _every_but(FORBIDDEN_WORDS, KEYWORD_EXISTENCE),
    TITLE: {TITLE},
    TWO_RESPONSES: _every_but(FORBIDDEN_WORDS, KEYWORD_EXISTENCE, RESPONSE_LANGUAGE, TITLE, NO_COMMA),
    REPEAT_PROMPT: _every_but(KEYWORD_EXISTENCE, TITLE, NO_COMMA),
    END_CHECKER: {END_CHECKER},
    CAPITAL_WORD_FREQUENCY: {CAPITAL_WORD_FREQUENCY, ENGLISH_LOWERCASE, ENGLISH_CAPITAL},
    ENGLISH_CAPITAL: {ENGLISH_CAPITAL},
    ENGLISH_LOWERCASE: {ENGLISH_LOWERCASE, ENGLISH_CAPITAL},
    NO_COMMA: {NO_COMMA},
    QUOTATION: {QUOTATION, TITLE},
}  # fmt: skip

# Clashes the reference table misses.
EXTRA_CONFLICTS: dict[str, set[str]] = {
    # Section headers ("Section 1", "SECTION 1") need a capital letter; an all-lowercase response has none.
    ENGLISH_LOWERCASE: {MULTIPLE_SECTIONS},
}


# IFBench's reference has no conflict table. Its types whose whole answer is fixed (a CSV of given rows, the request
# repeated, words in reverse, no whitespace at all, ...) leave no room for any other constraint; the rest combine like
# IFEval's, by id, with kwargs-level clashes left to the prompt builder.
IFBENCH_WHOLE_ANSWER = (
    PRINT_MULTIPLES, MULTIPLE_CHOICE_QUESTIONS, REVERSE_NEWLINE, WORD_REVERSE_ORDER, CHARACTER_REVERSE_ORDER,
    SENTENCE_ALPHABET, EUROPEAN_CAPITALS_SORT, CITY_CSV, SPECIAL_CHARACTER_CSV, QUOTES_CSV, DATE_FORMAT_LIST,
    REPEAT_CHANGE, REPEAT_SIMPLE, REPEAT_SPAN, NO_WHITESPACE, OUTPUT_TEMPLATE,
)  # fmt: skip
IFBENCH_CONFLICTS: dict[str, set[str]] = {cid: _every_but() for cid in IFBENCH_WHOLE_ANSWER}


def _expand(targets: set[str]) -> set[str]:
    if EVERY not in targets:
        return set(targets)
    return set(REGISTRY) - {t.removeprefix(EXCEPT) for t in targets if t.startswith(EXCEPT)}


def build_conflicts() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {cid: {cid} for cid in REGISTRY}
    for source in (IFEVAL_CONFLICTS, EXTRA_CONFLICTS, IFBENCH_CONFLICTS):
        for cid, targets in source.items():
            for other in _expand(targets):
                table[cid].add(other)
                table[other].add(cid)
    return {cid: frozenset(others) for cid, others in table.items()}


def install_conflicts() -> None:
    """Set `Constraint.conflicts` on every registered class (called once, after all constraint modules loaded)."""
    for cid, others in build_conflicts().items():
        REGISTRY[cid].conflicts = others
