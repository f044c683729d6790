from __future__ import annotations

from fractions import Fraction

import pytest

from posttrain.halt.math_steps import check_ground_truth, check_step, equations, evaluate
from posttrain.records import Prompt

ALLOWED = {Fraction(v) for v in (3, 4, 12, 5, 17)}


@pytest.mark.parametrize(
    ("step", "verdict"),
    [
        ("The bags hold 3 * 4 = 12 apples.", 1),
        ("Step 2: 12 + 5 = 17", 1),
        ("3 × 4 = 12, so 12 + 5 = 17.", 1),
        ("$3 \\times 4 = 12$", 1),
        ("(3 * 4 = 12)", 1),
        ("She has 17 apples now.", 1),  # no equation: the last number is the claim
        ("3 * 4 = 13", 0),  # arithmetic does not hold
        ("3 * 5 = 15", 0),  # holds, but 15 is no quantity of the ground truth
        ("She has 16 apples.", 0),
        ("12 + = 5", -1),  # an equation sympy cannot read
        ("3 * 4 =", -1),  # torn
        ("The final answer is 17.", 1),
        ("The final answer is \\boxed{17}.", 1),
        ("The final answer is 16.", 0),
    ],
)
def test_step_verdicts(step, verdict):
    assert check_step(step, ALLOWED, "17")[0] == verdict


def test_equations_and_exact_arithmetic():
    assert equations("x = 5 and 1,000 / 8 = 125.") == [["5"], ["1000 / 8", "125"]]
    assert evaluate("7 / 2") == Fraction(7, 2) and evaluate("2.5 * 2") == 5
    for bad in ("2 ** 99999999", "__import__('os')", "1 / 0", ""):
        with pytest.raises(ValueError):
            evaluate(bad)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "no 'gold' answer"),
        ({"gold": "12"}, "'solution_steps'"),
        ({"gold": "12", "solution_steps": ["3 * 4 = 13"]}, "not an equation that holds"),
        ({"gold": "12", "solution_steps": ["three times four = 12"]}, "not parseable"),
        ({"gold": "twelve", "solution_steps": ["3 * 4 = 12"]}, "not a number"),
    ],
)
def test_problems_without_checkable_ground_truth_are_refused(fields, message):
    with pytest.raises(ValueError, match=message):
        check_ground_truth(Prompt.model_validate({"prompt": "3 bags of 4?", **fields}))
