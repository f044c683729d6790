"""Task-aware kwargs: numbers and words that a good answer to *this* task can meet, all at once.

Every count in a prompt is derived from one target length per prompt, drawn from the task type's natural range
(a poem 40-200 words, an essay 300-900): "at least N words" takes N below the target, "fewer than N" above it,
paragraph / section / bullet / sentence counts are the target divided by a plausible unit size. So a word limit and
a paragraph count never contradict each other, and neither contradicts the task.

Words are made consistent too: required, repeated and forbidden keywords are distinct topic words, a forbidden
word never appears in another constraint's required text, and a "fewer than N of letter x" constraint picks a
letter that no required string contains. Keys are IFEval's, so any IFEval checker verifies the result.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from posttrain.constraint_ids import (
    AT_LEAST,
    CAPITAL_WORD_FREQUENCY,
    END_CHECKER,
    ENGLISH_CAPITAL,
    FORBIDDEN_WORDS,
    KEYWORD_EXISTENCE,
    KEYWORD_FREQUENCY,
    LESS_THAN,
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
)
from posttrain.prompts.inventory import TaskType

# Relative frequency of each letter in English text (share of all letters), for letter-count constraints.
LETTER_SHARE = {
    "a": 0.082, "b": 0.015, "c": 0.028, "d": 0.043, "e": 0.127, "f": 0.022, "g": 0.020, "h": 0.061,
    "i": 0.070, "j": 0.002, "k": 0.008, "l": 0.040, "m": 0.024, "n": 0.067, "o": 0.075, "p": 0.019,
    "q": 0.001, "r": 0.060, "s": 0.063, "t": 0.091, "u": 0.028, "v": 0.010, "w": 0.024, "x": 0.002,
    "y": 0.020, "z": 0.001,
}  # fmt: skip
LETTERS_PER_WORD = 4.7
RARE_LETTERS = tuple(letter for letter, share in LETTER_SHARE.items() if share <= 0.01)

# Used when a seed task yields too few topic words, or a sampled phrase would break another constraint.
GENERIC_WORDS = ("example", "detail", "reason", "moment", "result", "choice", "habit", "lesson", "future", "idea")
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?", "Let me know if you have "
               "additional questions.", "That is all for now.", "Thanks for reading.", "Hope this helps.")  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """What the kwargs are fitted to: the task, a target answer length, and words on topic."""

    task: TaskType
    target_words: int
    topic_words: tuple[str, ...]


def make_plan(rng: random.Random, task: TaskType, topic_words: tuple[str, ...]) -> Plan:
    lo, hi = task.words
    target = round(math.exp(rng.uniform(math.log(lo), math.log(hi))))  # log-uniform: short answers as common
    words = tuple(w for w in topic_words if w.isalpha()) or GENERIC_WORDS
    return Plan(task, target, words)


def _nice(n: float) -> int:
    """Round a word count the way a person would write it (10s below 200, 25s below 500, else 50s)."""
    step = 10 if n < 200 else 25 if n < 500 else 50
    return max(step, int(round(n / step)) * step)


def _clamp_range(rng: random.Random, lo: int, hi: int, cap: int, floor: int = 1) -> int:
    """A count in the task's range [lo, hi] that also fits the target (<= cap); never below floor."""
    hi = max(floor, min(hi, cap))
    lo = max(floor, min(lo, hi))
    return rng.randint(lo, hi)


def fit_kwargs(
    rng: random.Random, ids: list[str], sampled: list[dict[str, Any]], plan: Plan
) -> list[dict[str, Any]]:
    """The library-sampled kwargs, with counts and words overridden to fit the plan and each other."""
    kwargs = {cid: dict(kw) for cid, kw in zip(ids, sampled, strict=True)}
    present = set(ids)
    L, task = plan.target_words, plan.task
    words = list(plan.topic_words)
    rng.shuffle(words)
    spare = [w for w in GENERIC_WORDS if w not in words]
    rng.shuffle(spare)
    pool = words + spare  # keyword candidates, topic words first

    def take() -> str:
        return pool.pop(0)

    # Words: required, repeated and forbidden keywords are distinct words.
    if KEYWORD_EXISTENCE in present:
        kwargs[KEYWORD_EXISTENCE]["keywords"] = [take() for _ in range(rng.randint(1, 2))]
    if END_CHECKER in present:
        phrase = kwargs[END_CHECKER].get("end_phrase") or rng.choice(END_PHRASES)
        if NO_COMMA in present and "," in phrase:
            phrase = rng.choice(END_PHRASES)
        kwargs[END_CHECKER]["end_phrase"] = phrase
    if NTH_PARAGRAPH_FIRST_WORD in present:
        first = kwargs[NTH_PARAGRAPH_FIRST_WORD].get("first_word") or take()
        kwargs[NTH_PARAGRAPH_FIRST_WORD]["first_word"] = str(first).lower()
    if KEYWORD_FREQUENCY in present:
        relation = rng.choice((AT_LEAST, LESS_THAN))
        top = max(2, min(6, L // 50 + 2))
        frequency = rng.randint(2, top) if relation == AT_LEAST else rng.randint(2, 4)
        # The count is of substrings: the keyword must not hide inside another required word ("art" in "party").
        required = _required_text(kwargs).lower()
        keyword = next((w for w in pool if w not in required and not any(w in r or r in w for r in required.split())), None)
        if keyword is None:
            keyword = "keyword"
        else:
            pool.remove(keyword)
        kwargs[KEYWORD_FREQUENCY].update(keyword=keyword, relation=relation, frequency=frequency)
    if FORBIDDEN_WORDS in present:
        required = _required_text(kwargs).lower()
        forbidden = [w for w in pool if not re.search(rf"\b{re.escape(w)}\b", required)]
        kwargs[FORBIDDEN_WORDS]["forbidden_words"] = forbidden[: rng.randint(1, 3)]

    # Counts: all derived from the one target length L.
    if NUMBER_WORDS in present:
        relation = rng.choice((AT_LEAST, LESS_THAN))
        n = L * rng.uniform(0.55, 0.9) if relation == AT_LEAST else L * rng.uniform(1.25, 1.8)
        kwargs[NUMBER_WORDS].update(relation=relation, num_words=_nice(n))
    paragraphs = 0
    if NUMBER_PARAGRAPHS in present:
        paragraphs = _clamp_range(rng, *task.paragraphs, cap=L // 30, floor=2)  # "exactly 1 paragraph" is no ask
        kwargs[NUMBER_PARAGRAPHS]["num_paragraphs"] = paragraphs
    if NTH_PARAGRAPH_FIRST_WORD in present:
        paragraphs = _clamp_range(rng, *task.paragraphs, cap=L // 30, floor=2)
        kwargs[NTH_PARAGRAPH_FIRST_WORD].update(
            num_paragraphs=paragraphs, nth_paragraph=rng.randint(1, paragraphs)
        )
    bullets = 0
    if NUMBER_BULLET_LISTS in present:
        bullets = _clamp_range(rng, *task.bullets, cap=L // 6)
        kwargs[NUMBER_BULLET_LISTS]["num_bullets"] = bullets
    sections = 0
    if MULTIPLE_SECTIONS in present:
        sections = _clamp_range(rng, *task.sections, cap=L // 40)
        spliter = kwargs[MULTIPLE_SECTIONS].get("section_spliter") or "Section"
        if ENGLISH_CAPITAL in present:
            spliter = spliter.upper()  # the splitter is matched case-sensitively
        elif CAPITAL_WORD_FREQUENCY in present:
            spliter = spliter.capitalize()  # "SECTION" would itself count as a capital word
        kwargs[MULTIPLE_SECTIONS].update(num_sections=sections, section_spliter=spliter)
    if NUMBER_SENTENCES in present:
        estimate = max(1.0, L / 16)  # ~16 words per sentence in plain prose
        relation = rng.choice((AT_LEAST, LESS_THAN))
        if relation == AT_LEAST:
            n = max(1, math.floor(estimate * rng.uniform(0.4, 0.75)))
        else:  # room for every bullet, section header and paragraph to be read as a sentence of its own
            n = math.ceil(estimate * rng.uniform(1.3, 1.8)) + 2 + bullets + sections + paragraphs
        kwargs[NUMBER_SENTENCES].update(relation=relation, num_sentences=n)
    if NUMBER_HIGHLIGHTED_SECTIONS in present:
        kwargs[NUMBER_HIGHLIGHTED_SECTIONS]["num_highlights"] = rng.randint(
            1, max(1, min(4, L // 40))
        )
    if NUMBER_PLACEHOLDERS in present:
        kwargs[NUMBER_PLACEHOLDERS]["num_placeholders"] = rng.randint(
            1, max(1, min(6, L // 25))
        )
    if CAPITAL_WORD_FREQUENCY in present:
        relation = rng.choice((AT_LEAST, LESS_THAN))
        n = rng.randint(2, max(2, min(20, L // 15))) if relation == AT_LEAST else rng.randint(8, 20)
        kwargs[CAPITAL_WORD_FREQUENCY].update(capital_relation=relation, capital_frequency=n)
    if LETTER_FREQUENCY in present:
        kwargs[LETTER_FREQUENCY] = _fit_letter(rng, L, _required_text(kwargs).lower())
    return [kwargs[cid] for cid in ids]


def _fit_letter(rng: random.Random, target_words: int, required: str) -> dict[str, Any]:
    """'at least n' of a letter below its expected count; 'less than n' only for a rare letter, well above it."""
    relation = rng.choice((AT_LEAST, LESS_THAN))
    if relation == LESS_THAN:
        rare = [letter for letter in RARE_LETTERS if letter not in required]
        if not rare:
            relation = AT_LEAST
    if relation == AT_LEAST:
        letter = rng.choice([letter for letter, share in LETTER_SHARE.items() if share >= 0.02])
        expected = target_words * LETTERS_PER_WORD * LETTER_SHARE[letter]
        n = max(1, min(60, math.floor(expected * rng.uniform(0.2, 0.5))))
    else:
        letter = rng.choice(rare)
        expected = target_words * LETTERS_PER_WORD * LETTER_SHARE[letter]
        n = math.ceil(expected * 2) + rng.randint(3, 8)
    return {"letter": letter, "let_frequency": n, "let_relation": relation}


def _required_text(kwargs: dict[str, dict[str, Any]]) -> str:
    """Everything other constraints force into the answer (keywords, phrases, markers, splitters)."""
    parts: list[str] = []
    for key in ("keywords", "keyword", "end_phrase", "first_word", "postscript_marker", "section_spliter"):
        for kw in kwargs.values():
            value = kw.get(key)
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, list):
                parts.extend(str(v) for v in value)
    return " ".join(parts)
