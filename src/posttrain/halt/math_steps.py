"""Checking a math step's claim against the problem's ground truth, with sympy (and math-verify for the
answer).

A step is correct when
1. every equation in it holds: each side of `a = b = c` evaluates (sympy, exact rationals) to the same
   number, and
2. the value it arrives at (the last side of each equation, or its last number when it has no equation) is
   a quantity of the ground truth: a number given in the problem, a side of a ground-truth step, or the
   answer. The final-answer sentence ("The final answer is X") is correct when X equals the gold answer
   (math-verify, as the `math` judge compares). So a step that does right arithmetic on a wrong quantity
   fails (2), as does a step that reaches a true quantity by wrong arithmetic (1).

Verdicts: 1 correct, 0 wrong, -1 the step has an equation sympy cannot read (e.g. `12 + = 5`): not
verifiable, which HALT treats as not known to be correct.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from posttrain.halt.fragments import Fragment
from posttrain.records import Prompt

_FINAL = re.compile(r"the final answer is", re.IGNORECASE)
_EQUATION_RUN = re.compile(r"[\d.+\-*/() \t=]+")
_SIDE = re.compile(r"^[\d.+\-*/() ]+$")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_LIST_PREFIX = re.compile(r"^\s*(?:step\s*)?\d+\s*[.):]\s+", re.IGNORECASE | re.MULTILINE)
MAX_SIDE_CHARS = 120


def normalise(text: str) -> str:
    """Arithmetic as people write it, as plain operators: ×, ·, x between numbers, ÷, −, LaTeX."""
    text = _LIST_PREFIX.sub("", text)
    for old, new in (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("×", "*"), ("·", "*"), ("÷", "/"),
                     ("−", "-"), ("$", " "), ("\\(", " "), ("\\)", " ")):  # fmt: skip
        text = text.replace(old, new)
    text = re.sub(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}", r"(\1)/(\2)", text)
    text = re.sub(r"(?<=\d)\s*[xX]\s*(?=\d)", " * ", text)
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000


def evaluate(side: str) -> Fraction:
    """An arithmetic expression as an exact fraction. Raises ValueError when it is not plain arithmetic."""
    from sympy import Rational, nsimplify
    from sympy.parsing.sympy_parser import parse_expr, rationalize, standard_transformations

    side = side.strip()
    if not side or len(side) > MAX_SIDE_CHARS or not _SIDE.match(side) or "**" in side or "//" in side:
        raise ValueError(f"not an arithmetic expression: {side!r}")
    try:  # only digits, operators and brackets reach parse_expr (it evaluates Python)
        value = nsimplify(parse_expr(side, transformations=(*standard_transformations, rationalize)))
    except Exception as err:  # sympy raises SyntaxError, TokenError, ZeroDivisionError, TypeError, ...
        raise ValueError(f"cannot evaluate {side!r}: {type(err).__name__}") from None
    if not isinstance(value, Rational):
        raise ValueError(f"{side!r} is not a finite number")
    return Fraction(int(value.p), int(value.q))


def equations(text: str) -> list[list[str]]:
    """The sides of every equation in a step: "buys 3 * 4 = 12 bags" -> [["3 * 4", "12"]]. A leading empty side
    ("x = 5" loses the x) is dropped."""
    found = []
    for run in _EQUATION_RUN.finditer(normalise(text)):
        if "=" not in run.group():
            continue
        sides = [_balanced(s) for s in run.group().strip().rstrip(".").split("=")]
        if sides and not sides[0]:
            sides = sides[1:]
        found.append(sides)
    return found


def _balanced(side: str) -> str:
    """A side without the brackets of the sentence around it: "(3 * 4" -> "3 * 4", "12)" -> "12"."""
    side = side.strip()
    while side.startswith("(") and side.count("(") > side.count(")"):
        side = side[1:].strip()
    while side.endswith(")") and side.count(")") > side.count("("):
        side = side[:-1].strip()
    return side


def ground_truth_values(problem: Prompt) -> set[Fraction]:
    """Every quantity of the ground truth: the problem's numbers, each side of a solution step, the answer."""
    text = str(getattr(problem, "problem", None) or problem.text)
    values = {Fraction(n) for n in _NUMBER.findall(normalise(text))}
    for claim in solution_steps(problem):
        values.update(evaluate(side) for side in claim.split("="))
    values.add(evaluate(normalise(str(problem.gold))))
    return values


def solution_steps(problem: Prompt) -> list[str]:
    steps = getattr(problem, "solution_steps", None)
    return [str(s) for s in steps] if isinstance(steps, list) else []


def check_ground_truth(problem: Prompt) -> None:
    """Raise ValueError when the problem cannot be checked against: no gold answer, no steps, a step that is not
    an equation that holds."""
    if problem.gold is None or not str(problem.gold).strip():
        raise ValueError("no ground truth: the problem has no 'gold' answer")
    steps = getattr(problem, "solution_steps", None)
    if not isinstance(steps, list) or not steps:
        raise ValueError(
            "no ground truth: 'solution_steps' (a list of equations such as \"3 * 4 = 12\") is missing"
        )
    for k, claim in enumerate(steps, start=1):
        sides = str(claim).split("=")
        try:
            values = [evaluate(side) for side in sides]
        except ValueError as err:
            raise ValueError(f"solution step {k} {claim!r} is not parseable: {err}") from None
        if len(sides) < 2 or len(set(values)) != 1:
            raise ValueError(f"solution step {k} {claim!r} is not an equation that holds")
    try:
        evaluate(normalise(str(problem.gold)))
    except ValueError:
        raise ValueError(f"gold answer {problem.gold!r} is not a number") from None


def check_step(text: str, allowed: set[Fraction], gold: str) -> tuple[int, str]:
    """(verdict, why) for one step."""
    if _FINAL.search(text):
        from posttrain.judges.math_answer import equivalent, final_answer_sentence

        answer = final_answer_sentence(text)
        if not answer:
            return 0, "final-answer sentence without an answer"
        same, method = equivalent(answer, gold)
        return (
            (1, f"final answer {answer!r} = gold ({method})")
            if same
            else (0, f"final answer {answer!r} != gold {gold!r}")
        )
    found = equations(text)
    claimed: list[Fraction] = []
    for sides in found:
        try:
            values = [evaluate(side) for side in sides]
        except ValueError as err:
            return -1, f"unparseable equation: {err}"
        if not values:
            return -1, "an equals sign with nothing around it"
        if len(set(values)) != 1:
            shown = " = ".join(sides)
            return 0, f"arithmetic does not hold: {shown}"
        claimed.append(values[-1])
    if not found:
        numbers = _NUMBER.findall(normalise(text))
        claimed = [Fraction(numbers[-1])] if numbers else []
    if not claimed:
        return -1, "no claim to check"
    unknown = [v for v in claimed if v not in allowed]
    if unknown:
        return 0, f"{_show(unknown[0])} is not a quantity of the ground truth"
    return 1, "holds; " + ", ".join(_show(v) for v in claimed) + " in the ground truth"


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class MathStepGrader:
    """The math domain's grader: each fragment's claim against the problem's ground-truth quantities."""

    name = "math-steps"

    def grade(self, problem: Prompt, fragments: Sequence[Fragment]) -> list[tuple[int, str]]:
        allowed = ground_truth_values(problem)
        return [check_step(f.text, allowed, str(problem.gold)) for f in fragments]
