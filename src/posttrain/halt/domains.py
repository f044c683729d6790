"""HALT's domains: how an answer splits into fragments, whether their order matters, what ground truth a
problem needs, and the grader used when none is named.

| domain | fragments | ordered | ground truth | default grader |
|---|---|---|---|---|
| math | steps (sentences with a number) | yes | `gold` + `solution_steps` (equations) | sympy, math-verify |
| code | tested top-level functions | yes | `tests`: function -> asserts | unit tests in the sandbox |
| text | sentences | no | `gold`: reference text (or `facts`) | none: name `--grader` (an LLM) |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from posttrain.errors import InputError
from posttrain.halt import code, math_steps
from posttrain.halt.fragments import Fragment, split_math_steps, split_sentences
from posttrain.halt.graders import FactListGrader, FragmentGrader, LLMFragmentGrader
from posttrain.records import Prompt


@dataclass(frozen=True)
class Domain:
    name: str
    ordered: bool
    split: Callable[[str, Prompt], list[Fragment]]
    check_ground_truth: Callable[[Prompt], None]  # raises ValueError naming what is missing
    full_size: Callable[[Prompt], int | None]  # fragments in a complete answer (None: unknown)


def _text_ground_truth(problem: Prompt) -> None:
    has_gold = problem.gold is not None and str(problem.gold).strip()
    if not has_gold and not getattr(problem, "facts", None):
        raise ValueError(
            "no ground truth: the problem has neither a 'gold' reference text nor a 'facts' list"
        )


def _facts_size(problem: Prompt) -> int | None:
    facts = getattr(problem, "facts", None)
    return len(facts) if isinstance(facts, list) and facts else None


DOMAINS = {
    "math": Domain("math", True, lambda answer, _: split_math_steps(answer), math_steps.check_ground_truth,
                   lambda p: len(math_steps.solution_steps(p)) + 1),  # the steps, then the final answer
    "code": Domain("code", True, lambda answer, p: code.split_functions(answer, list(code.tests_of(p))),
                   code.check_ground_truth, lambda p: len(code.tests_of(p))),
    "text": Domain("text", False, lambda answer, _: split_sentences(answer), _text_ground_truth, _facts_size),
}  # fmt: skip


def get_domain(name: str) -> Domain:
    if name not in DOMAINS:
        raise InputError(f"unknown HALT domain {name!r}; choose one of {', '.join(DOMAINS)}")
    return DOMAINS[name]


def make_grader(domain: Domain, spec: str | None, threads: int | None = None) -> FragmentGrader:
    """The grader a spec names: None -> the domain's own rules; "facts" -> FactListGrader; anything else is a
    backend spec for the LLM grader (loaded here)."""
    if spec is None or spec == "rules":
        if domain.name == "math":
            return math_steps.MathStepGrader()
        if domain.name == "code":
            return code.CodeFunctionGrader()
        raise InputError(
            "the text domain has no rule grader: pass --grader facts or a model (e.g. openai:<url>#<model>)"
        )
    if spec == "facts":
        return FactListGrader()
    from posttrain.models import load_backend

    backend: Any = load_backend(spec, threads=threads, dtype="float32")
    return LLMFragmentGrader(backend)
