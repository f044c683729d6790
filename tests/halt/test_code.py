from __future__ import annotations

import pytest

from posttrain.halt.code import CodeFunctionGrader, check_ground_truth, split_functions
from posttrain.halt.domains import get_domain
from posttrain.halt.targets import build_target
from posttrain.records import Prompt

PROBLEM = Prompt.model_validate({
    "prompt": "Write add(a, b) and then twice(x), which uses add.",
    "tests": {"add": "assert add(2, 3) == 5", "twice": "assert twice(4) == 8"},
})  # fmt: skip
ANSWER = ("Sure.\n```python\nimport math\n\ndef add(a, b):\n    return a + b\n\n"
          "def helper(x):\n    return x\n\ndef twice(x):\n    return add(x, helper(x)) + {bug}\n```\nDone.")  # fmt: skip


def test_tested_functions_are_the_fragments_and_helpers_join_the_next_one():
    answer = ANSWER.format(bug=0)
    fragments = split_functions(answer, ["add", "twice"])
    assert [f.name for f in fragments] == ["add", "twice"]
    assert fragments[0].text.startswith("import math") and "def helper" in fragments[1].text
    assert all(answer[f.start : f.end] == f.text for f in fragments)


def test_each_function_is_checked_by_its_tests_after_the_code_before_it():
    grader = CodeFunctionGrader()
    right = grader.grade(PROBLEM, split_functions(ANSWER.format(bug=0), ["add", "twice"]))
    assert [v for v, _ in right] == [1, 1]
    wrong_fragments = split_functions(ANSWER.format(bug=1), ["add", "twice"])
    wrong = grader.grade(PROBLEM, wrong_fragments)
    assert [v for v, _ in wrong] == [1, 0]
    answer = ANSWER.format(bug=1)
    t = build_target(
        answer, wrong_fragments, [v for v, _ in wrong], threshold=0.0, ordered=True, marker="Unsure."
    )
    assert t.text == "Sure.\n```python\nimport math\n\ndef add(a, b):\n    return a + b\n```\nUnsure."


def test_code_that_does_not_parse_is_one_wrong_fragment():
    fragments = split_functions("```python\ndef add(a, b)\n    return a\n```", ["add"])
    assert len(fragments) == 1 and fragments[0].name == ""
    assert CodeFunctionGrader().grade(PROBLEM, fragments)[0][0] == 0
    assert split_functions("no code at all", ["add"]) == []


def test_completeness_counts_the_tested_functions():
    assert get_domain("code").full_size(PROBLEM) == 2


@pytest.mark.parametrize(("tests", "message"), [(None, "'tests'"), ({"add": "assert ("}, "not parseable"),
                                                 ({"not a name": "pass"}, "not a function name")])  # fmt: skip
def test_problems_without_usable_tests_are_refused(tests, message):
    with pytest.raises(ValueError, match=message):
        check_ground_truth(Prompt.model_validate({"prompt": "p", "tests": tests}))
