"""The math judge on real answer formats: CGPO's sentence, nested \\boxed{}, last number; symbolic equality."""

from __future__ import annotations

import pytest

from posttrain.judges import get_judge
from posttrain.judges.math_answer import _sympy_equal, extract_answer, last_boxed


@pytest.mark.parametrize(
    ("response", "gold", "value"),
    [
        ("Halving 1 gives 0.5. The final answer is 0.5.", "1/2", 1),
        ("So the result is \\boxed{\\frac{1}{2}}.", "0.5", 1),
        ("The final answer is $2\\sqrt{2}$.", "\\sqrt{8}", 1),
        ("The final answer is $2\\sqrt{2}$.", "sqrt(8)", 1),
        ("The final answer is 2*sqrt(2)", "\\sqrt{8}", 1),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", 1),
        ("The solutions are \\boxed{\\{1, 2\\}}", "\\{2, 1\\}", 1),  # sets ignore order
        ("\\boxed{[0, 1)}", "[0,1)", 1),  # intervals
        ("\\boxed{(0, 1]}", "[0,1)", 0),  # ... with their endpoints
        ("The final answer is x^2+2x+1", "(x+1)^2", 1),
        ("The final answer is 1,000.", "1000", 1),
        ("There were 40 apples and then 2 more, so 42", "42", 1),  # last-number fallback
        ("The final answer is 43.", "42", 0),
        ("The final answer is \\frac{1}{3}", "0.333", 0),
        ("I am not sure.", "3", 0),
        ("The answer is \\boxed{5}", "Adding gives \\boxed{5}.", 1),  # a worked gold solution is reduced too
    ],
)
def test_real_cases(response, gold, value):
    (j,) = get_judge("math").judge([{"prompt": "q", "gold": gold}], [response])
    assert j.value == value, j.detail
    assert j.score == float(value)


def test_extraction_order_and_nesting():
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b^{2}}}") == "\\frac{a}{b^{2}}"
    assert last_boxed("\\boxed{unbalanced") is None
    assert extract_answer("\\boxed{3} The final answer is 4.") == ("4", "final-answer")
    assert extract_answer("x = \\boxed{3}, checked with 7") == ("3", "boxed")
    assert extract_answer("maybe 12 or 13") == ("13", "last-number")
    assert extract_answer("nothing") == (None, "none")


def test_strict_format_requires_cgpos_sentence():
    judge = get_judge("math", strict_format=True)
    (bad,) = judge.judge([{"prompt": "q", "gold": "2"}], ["\\boxed{2}"])
    assert bad.value == 0 and "The final answer is" in bad.detail
    (good,) = judge.judge([{"prompt": "q", "gold": "2"}], ["Adding: The final answer is 2."])
    assert good.value == 1


def test_sympy_fallback_reads_what_math_verify_cannot():
    assert _sympy_equal("2\\sqrt{2}", "sqrt(8)") is True
    assert _sympy_equal("\\frac{1}{2}", "0.5") is True
    assert _sympy_equal("3", "4") is False
    assert _sympy_equal("(", "1") is None
