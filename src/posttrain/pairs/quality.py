"""Targets that meet every constraint but not the request: the answers SFT should not learn from.

The checkers verify form, not substance, so a verified target can still be an answer a user would reject. On the
embedded model's own samples (seed 1, 2,600 prompts, the E4 run of `recipes/ifeval_sft.yaml`) about one verified
target in eight was one of these:
- **persona**: the model talks about itself instead of the task ("A helpful AI assistant, SmolLM, is designed to
  ...", "I'm ready to assist. What can I help you with today?"): its system-prompt persona leaking into answers;
- **restates_instructions**: the answer repeats five words in a row or more of the prompt's instructions ("P.S. The
  word "bug" must occur fewer than 2 times in your answer."), once the literals the answer is asked to contain
  (keywords, end phrase, "My answer is yes.") are set aside. Four words would also catch copies of a phrasing's
  example ("<<a day at sea>>", "This is point 1"), which break no constraint: those stay;
- **restates_task**: half or more of the answer's 4-grams are copied from the task itself;
- **too_short**: under 12 words while no constraint asks for a short answer.
The intent: learning from them teaches the model to echo instructions and stop early. Measured, dropping them
lowered the IFEval recipe's scores on seed 1 (prompt strict 28.3% -> 26.9%, dev split 30.4% -> 25.2%;
docs/benchmarks.md, E5): with 13% fewer rows the model learned the asked-for forms less. `targets.drop_flawed` is off
by default and in the recipe.
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.constraint_ids import (
    CONSTRAINED_RESPONSE,
    LESS_THAN,
    NUMBER_PARAGRAPHS,
    NUMBER_SENTENCES,
    NUMBER_WORDS,
    REPEAT_PROMPT,
)
from posttrain.constraints.ifeval import CONSTRAINED_RESPONSES
from posttrain.records import Prompt

MIN_WORDS = 12
# The kwargs whose text an answer is asked to contain verbatim: its words there are not an echo of the prompt.
_LITERAL_KWARGS = ("keywords", "keyword", "forbidden_words", "end_phrase", "postscript_marker", "section_spliter",
                   "first_word", "prompt_to_repeat")  # fmt: skip
_WORD = re.compile(r"[a-z0-9']+")
_PERSONA = re.compile(
    r"\b(helpful|friendly) (ai|assistant)\b|\bai assistant\b|\bsmollm\b|\bas an ai\b"
    r"|\bi'?m (here|ready) to (help|assist)\b|\bi am (here|ready) to (help|assist)\b"
    r"|\bhow can i (help|assist)\b|\bwhat can i help\b|\bglad to help\b",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _literals(ids: list[str], kwargs: list[dict[str, Any]]) -> list[str]:
    """Strings the answer may be asked to contain verbatim (end phrase, keywords, the request to repeat ...)."""
    out: list[str] = list(CONSTRAINED_RESPONSES) if CONSTRAINED_RESPONSE in ids else []
    for kw in kwargs:
        for key in _LITERAL_KWARGS:
            value = (kw or {}).get(key)
            if isinstance(value, str) and value:
                out.append(value)
            elif isinstance(value, list):
                out.extend(v for v in value if isinstance(v, str) and v)
    return sorted(out, key=len, reverse=True)  # longest first, so a keyword inside a phrase stays matched


def _asks_for_brevity(prompt: Prompt) -> bool:
    for cid, kw in zip(prompt.instruction_id_list, prompt.kwargs, strict=True):
        if cid == CONSTRAINED_RESPONSE:
            return True
        if cid in (NUMBER_WORDS, NUMBER_SENTENCES, NUMBER_PARAGRAPHS) and (kw or {}).get("relation") == LESS_THAN:
            return True
    return False


def flaw(answer: str, prompt: Prompt, task: str | None) -> str | None:
    """Why `answer` is not worth learning as the answer to `prompt` (see the module docstring), or None. `task` is
    the prompt's base task (the request without its constraints), when the prompt was synthesised from one."""
    body = answer
    ids, kwargs = prompt.instruction_id_list, prompt.kwargs
    if REPEAT_PROMPT in ids:
        copied = (kwargs[ids.index(REPEAT_PROMPT)] or {}).get("prompt_to_repeat", "")
        if copied and body.startswith(copied):
            body = body[len(copied) :]
    if _PERSONA.search(body):
        return "persona"
    # The task goes first: a literal inside it (a forbidden word) would otherwise break its match.
    instructions = prompt.text.replace(task, "\n") if task and task in prompt.text else ""
    for literal in _literals(ids, kwargs):
        body = body.replace(literal, "\n")
        instructions = instructions.replace(literal, "\n")
    words = _words(body)
    if instructions and _grams(words, 5) & _grams(_words(instructions), 5):
        return "restates_instructions"
    if task:
        grams = _grams(words, 4)
        if grams and len(grams & _grams(_words(task), 4)) >= len(grams) / 2:
            return "restates_task"
    if len(words) < MIN_WORDS and not _asks_for_brevity(prompt):
        return "too_short"
    return None
