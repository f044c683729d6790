from __future__ import annotations

import pytest

from posttrain.halt.fragments import split_math_steps
from posttrain.halt.targets import build_target

ANSWER = "Step 1: 3 * 4 = 12.\nStep 2: 12 + 5 = 18.\nStep 3: 18 - 1 = 17.\nThe final answer is 17."
M = "Unsure from here."


def target(verdicts, threshold=0.0, ordered=True, truncated=False):
    fragments = split_math_steps(ANSWER)
    return build_target(ANSWER, fragments, verdicts, threshold=threshold, ordered=ordered, marker=M,
                        truncated=truncated)  # fmt: skip


def test_ordered_answers_are_cut_at_the_first_wrong_step_with_the_marker():
    t = target([1, 0, 1, 0])
    assert t.text == f"Step 1: 3 * 4 = 12.\n{M}"
    assert (t.kept, t.cut_at, t.abstained, t.correct_fraction) == (1, 1, False, 0.5)


def test_an_unverifiable_step_counts_as_not_correct():
    assert target([1, 1, -1, 1]).cut_at == 2


def test_a_right_answer_is_kept_whole_and_a_truncated_one_loses_its_last_fragment():
    assert target([1, 1, 1, 1]).text == ANSWER
    assert target([1, 1, 1, 1], truncated=True).text.endswith(f"18 - 1 = 17.\n{M}")


@pytest.mark.parametrize(("threshold", "abstained"), [(0.5, False), (0.51, True), (1.0, True)])
def test_below_the_threshold_the_target_abstains_entirely(threshold, abstained):
    t = target([1, 0, 1, 0], threshold=threshold)
    assert t.abstained is abstained and (t.text == M) is abstained


def test_a_wrong_first_step_is_an_abstention_and_no_fragment_is_one_too():
    assert target([0, 1, 1, 1]).text == M and target([0, 1, 1, 1]).abstained
    empty = build_target("no numbers here", [], [], threshold=0.0, ordered=True, marker=M)
    assert empty.abstained and empty.correct_fraction is None


def test_unordered_answers_drop_the_wrong_fragments():
    t = target([1, 0, 1, 0], ordered=False)
    assert t.text == "Step 1: 3 * 4 = 12. Step 3: 18 - 1 = 17." and t.kept == 2 and t.cut_at is None


def test_a_cut_inside_a_code_block_closes_the_block():
    from posttrain.halt.fragments import Fragment

    answer = "Here:\n```python\ndef a():\n    return 1\n\ndef b():\n    return 3\n```"
    start_b = answer.index("def b")
    fragments = [Fragment("def a():\n    return 1\n\n", answer.index("def a"), start_b),
                 Fragment("def b():\n    return 3\n", start_b, len(answer) - 3)]  # fmt: skip
    t = build_target(answer, fragments, [1, 0], threshold=0.0, ordered=True, marker=M)
    assert t.text == f"Here:\n```python\ndef a():\n    return 1\n```\n{M}"
