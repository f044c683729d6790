"""Fragment graders: `grade(problem, fragments) -> [(verdict, why)]`, one verdict per fragment (1, 0 or -1).

The math and code domains have rule graders (`math_steps.MathStepGrader`, `code.CodeFunctionGrader`). For
free-text domains (biographies, medicine) the verdict needs a model that reads the ground truth:
`LLMFragmentGrader` asks any posttrain backend (`embedded`, a directory, `openai:<url>#<model>`,
`vllm:<model>`) whether each fragment is supported by the problem's `gold` reference text, greedily, and
reads TRUE / FALSE from its answer; an answer with neither is -1 for that fragment. Use a strong model: a
135M model is no grader. `FactListGrader` is the deterministic rule with the same interface, for prompts
that list their true facts.

A grader that raises on an item fails that item only: the caller counts it and writes nothing for it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Protocol

from posttrain.halt.fragments import Fragment
from posttrain.records import Prompt


class FragmentGrader(Protocol):
    name: str

    def grade(self, problem: Prompt, fragments: Sequence[Fragment]) -> list[tuple[int, str]]: ...


GRADER_TEMPLATE = (
    "You check one statement of an answer against a reference.\n\n"
    "Question: {question}\n\nReference (the ground truth):\n{reference}\n\n"
    "Statement from the answer:\n{fragment}\n\n"
    "Is the statement correct and supported by the reference? Answer with one word: TRUE or FALSE."
)
_WORD = re.compile(r"\b(true|false|yes|no|correct|incorrect)\b", re.IGNORECASE)
_POSITIVE = {"true", "yes", "correct"}


def parse_grade(text: str) -> tuple[int, str]:
    """The first TRUE/FALSE (or yes/no, correct/incorrect) word of a grader's answer; -1 without one."""
    found = _WORD.search(text)
    if found is None:
        return -1, f"grader answer without TRUE or FALSE: {text.strip()[:80]!r}"
    word = found.group(1).lower()
    return (1 if word in _POSITIVE else 0), f"grader: {word}"


class LLMFragmentGrader:
    """Grades each fragment with a model given the problem's reference (`gold`), through any backend."""

    name = "llm"

    def __init__(self, backend: Any, max_new_tokens: int = 8, template: str = GRADER_TEMPLATE) -> None:
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.template = template
        self.name = f"llm:{getattr(backend, 'name', type(backend).__name__)}"

    def grade(self, problem: Prompt, fragments: Sequence[Fragment]) -> list[tuple[int, str]]:
        from posttrain.models.backend import SamplingParams

        if not fragments:
            return []
        question = str(getattr(problem, "problem", None) or problem.text)
        prompts = [self.template.format(question=question, reference=problem.gold, fragment=f.text)
                   for f in fragments]  # fmt: skip
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0, seed=0)
        rows = self.backend.generate(prompts, 1, params)
        return [parse_grade(row[0].text) for row in rows]


class FactListGrader:
    """A fragment is correct when it states one of the problem's `facts` (case and spacing ignored). Meant for
    prompts built from a fact list, and as the rule-based stand-in for the LLM grader in tests."""

    name = "facts"

    def grade(self, problem: Prompt, fragments: Sequence[Fragment]) -> list[tuple[int, str]]:
        facts = getattr(problem, "facts", None)
        if not isinstance(facts, list) or not facts:
            raise ValueError("the facts grader needs the problem's 'facts' list")
        wanted = [_plain(str(f)) for f in facts]
        out = []
        for fragment in fragments:
            text = _plain(fragment.text)
            hit = next((f for f in wanted if f and f in text), None)
            out.append((1, f"states {hit!r}") if hit else (0, "states no listed fact"))
        return out


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
