"""The math judge: extract the final answer and compare it with the gold answer symbolically.

Extraction, first hit wins: CGPO's format "The final answer is X" (the last occurrence), then the last `\\boxed{...}`
(nested braces allowed), then the last number in the text. `strict_format=True` accepts only CGPO's sentence
("bad format counts as a violation", CGPO App. B). Comparison: math-verify (`parse` + `verify`: LaTeX, fractions,
radicals, sets, intervals, percentages), then sympy on a light LaTeX-to-Python rewrite when math-verify cannot
parse one side, then normalised string equality. A gold that is itself a worked solution is reduced the same way.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from posttrain.judges.base import Item, Judge, Judgment

_FINAL = re.compile(r"the final answer is\s*:?\s*(.+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
TIMEOUT_SECONDS = 5


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` or `\\fbox{...}`, matching nested braces."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i].strip()
    return None  # unbalanced: no answer


def final_answer_sentence(text: str) -> str | None:
    """X in the last "The final answer is X" (to the end of its line, without a closing period)."""
    matches = _FINAL.findall(text)
    if not matches:
        return None
    answer = matches[-1].strip()
    boxed = last_boxed(answer)
    if boxed is not None:
        return boxed
    answer = answer.strip()
    if answer.endswith("."):  # the sentence's period, not a decimal point (those have a digit after them)
        answer = answer[:-1]
    return answer.strip().strip("$").strip()


def last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1].replace(",", "").replace(" ", "") if numbers else None


def extract_answer(text: str, strict_format: bool = False) -> tuple[str | None, str]:
    """(answer, how it was found) — how is "final-answer", "boxed", "last-number" or "none"."""
    found = final_answer_sentence(text)
    if found:
        return found, "final-answer"
    if strict_format:
        return None, "none"
    boxed = last_boxed(text)
    if boxed:
        return boxed, "boxed"
    number = last_number(text)
    return (number, "last-number") if number else (None, "none")


# ---------------------------------------------------------------------------------------------- compare


@contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """A SIGALRM deadline for sympy, which can hang on adversarial input; signals work on the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"comparison took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _mv_parse(text: str) -> list[Any]:
    from math_verify import parse

    timeout = TIMEOUT_SECONDS if _on_main_thread() else None  # math-verify's timeout uses SIGALRM too
    wrapped = text if "$" in text or "\\boxed" in text else f"${text}$"
    parsed = parse(wrapped, parsing_timeout=timeout)  # type: ignore[arg-type]
    return parsed or parse(text, parsing_timeout=timeout)  # type: ignore[arg-type]


def _latex_to_python(text: str) -> str:
    text = text.strip().strip("$")
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\cdot", "*"), ("\\times", "*"),
                     ("\\pi", "pi"), ("^", "**"), ("{", "("), ("}", ")")):  # fmt: skip
        text = text.replace(old, new)
    text = re.sub(r"\\[dt]?frac\(([^()]*)\)\(([^()]*)\)", r"((\1)/(\2))", text)
    return re.sub(r"\\sqrt\(([^()]*)\)", r"sqrt(\1)", text).replace("\\", "")


def _sympy_equal(answer: str, gold: str) -> bool | None:
    """None when sympy cannot read one side either."""
    from sympy import simplify
    from sympy.parsing.sympy_parser import (
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transformations = (*standard_transformations, implicit_multiplication_application)
    try:
        a = parse_expr(_latex_to_python(answer), transformations=transformations, evaluate=True)
        g = parse_expr(_latex_to_python(gold), transformations=transformations, evaluate=True)
    except Exception:  # sympy raises many types (SyntaxError, TokenError, TypeError) for unreadable text
        return None
    return bool(simplify(a - g) == 0)


def _normalized(text: str) -> str:
    return re.sub(r"\s+|\$|\\[,!;]|\\text\{|\}", "", text).lower().rstrip(".")


def equivalent(answer: str, gold: str) -> tuple[bool, str]:
    """(equal?, which method decided)."""
    parsed_gold, parsed_answer = _mv_parse(gold), _mv_parse(answer)
    if parsed_gold and parsed_answer:
        from math_verify import verify

        timeout = TIMEOUT_SECONDS if _on_main_thread() else None
        if verify(parsed_gold, parsed_answer, timeout_seconds=timeout):
            return True, "math-verify"
        # math-verify read both but disagrees; sympy is only a fallback for text it could not read.
        return False, "math-verify"
    with _alarm(TIMEOUT_SECONDS):
        same = _sympy_equal(answer, gold)
    if same is not None:
        return same, "sympy"
    return _normalized(answer) == _normalized(gold), "string"


class MathJudge(Judge):
    name = "math"
    requires_gold = True
    cpu_bound = True

    def __init__(self, strict_format: bool = False) -> None:
        self.strict_format = strict_format

    def judge_one(self, item: Item) -> Judgment:
        gold_text = str(item.gold)
        gold, _ = extract_answer(gold_text) if ("\\boxed" in gold_text or _FINAL.search(gold_text)) else (gold_text, "")
        answer, how = extract_answer(item.completion, self.strict_format)
        if answer is None:
            wanted = "'The final answer is ...'" if self.strict_format else "a final answer, \\boxed{} or a number"
            return Judgment(0, 0.0, f"no answer found (expected {wanted})")
        same, method = equivalent(answer, str(gold))
        relation = "=" if same else "!="
        return Judgment(1 if same else 0, 1.0 if same else 0.0, f"{answer!r} {relation} gold {gold!r} ({how}, {method})")
