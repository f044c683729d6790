from __future__ import annotations

import pytest

from posttrain.halt.build import grade_answer
from posttrain.halt.domains import get_domain, make_grader
from posttrain.halt.fragments import split_sentences
from posttrain.halt.graders import FactListGrader, LLMFragmentGrader, parse_grade
from posttrain.records import Prompt

BIO = Prompt.model_validate({
    "prompt": "Write a short biography of Ada Lovelace.",
    "gold": "Ada Lovelace (1815-1852) was an English mathematician who wrote the first published algorithm.",
    "facts": ["born in 1815", "English mathematician", "first published algorithm"],
})  # fmt: skip
ANSWER = "Ada Lovelace was born in 1815. She was an English mathematician. She was born in Paris."


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("TRUE", 1),
        ("  false.", 0),
        ("Yes, it is.", 1),
        ("Incorrect: the year is wrong", 0),
        ("Paris", -1),
        ("", -1),
    ],
)
def test_grader_answers_are_read_from_their_first_verdict_word(text, value):
    assert parse_grade(text)[0] == value


def test_the_rule_grader_implements_the_grader_interface():
    verdicts = FactListGrader().grade(BIO, split_sentences(ANSWER))
    assert [v for v, _ in verdicts] == [1, 1, 0]


def test_the_llm_grader_runs_a_real_backend_and_an_unreadable_answer_is_minus_one(tiny_model_dir):
    # A tiny random model writes no TRUE/FALSE: every fragment is -1, so the item counts as a grader failure.
    grader = make_grader(get_domain("text"), str(tiny_model_dir))
    assert isinstance(grader, LLMFragmentGrader)
    graded = grade_answer(get_domain("text"), grader, BIO, ANSWER)
    assert graded.verdicts == [-1, -1, -1] and graded.failed.startswith("grader could not verify")
    prompt = grader.template.format(question="q", reference=BIO.gold, fragment="She was born in 1815.")
    assert "She was born in 1815." in prompt and "TRUE or FALSE" in prompt


def test_a_grader_that_raises_fails_that_item_only():
    graded = grade_answer(get_domain("text"), FactListGrader(), Prompt(prompt="no facts", gold="x"), ANSWER)
    assert graded.verdicts == [-1, -1, -1] and "facts" in graded.failed


def test_the_text_domain_needs_a_named_grader():
    from posttrain.errors import InputError

    with pytest.raises(InputError, match="no rule grader"):
        make_grader(get_domain("text"), None)
