from __future__ import annotations

from posttrain.halt.fragments import before_marker, split_math_steps, split_sentences


def test_math_steps_keep_their_spans_and_join_prose_to_the_next_claim():
    answer = (
        "Let me think.\nFirst, 3 * 4 = 12. Then 12 + 5 = 17 apples.\nSo the total is 17.\nHope this helps!"
    )
    fragments = split_math_steps(answer)
    assert [f.text for f in fragments] == [
        "Let me think.\nFirst, 3 * 4 = 12.",
        "Then 12 + 5 = 17 apples.",
        "So the total is 17.\nHope this helps!",
    ]
    assert all(answer[f.start : f.end] == f.text for f in fragments)


def test_decimals_do_not_split_sentences():
    assert [f.text for f in split_math_steps("It costs 2.5 * 2 = 5.0 dollars. Next 5 + 1 = 6.")] == [
        "It costs 2.5 * 2 = 5.0 dollars.",
        "Next 5 + 1 = 6.",
    ]


def test_text_after_the_marker_is_not_part_of_the_answer():
    answer = "3 * 4 = 12.\nUnsure from Here. 12 + 1 = 99."
    assert before_marker(answer) == ("3 * 4 = 12.\n", True)
    assert [f.text for f in split_math_steps(answer)] == ["3 * 4 = 12."]
    assert split_math_steps("unsure from here.") == []


def test_sentences_are_the_fragments_of_free_text():
    assert [f.text for f in split_sentences("Ada was born in 1815. She wrote notes.\nShe died young.")] == [
        "Ada was born in 1815.",
        "She wrote notes.",
        "She died young.",
    ]
