"""Constraint-repair pairs: the edit satisfies every constraint (both check modes), stays close to the answer, and
turns a loop cut off by the token budget into a finished answer."""

from __future__ import annotations

import random

import pytest

from posttrain.constraints import check_all, get_constraint
from posttrain.pairs.repair import cut_repetition, repair, repair_pairs
from posttrain.records import Prompt, Sample

ANSWER = (
    "Bees are small insects that live in large colonies. They collect nectar from flowers and turn it into honey.\n\n"
    "A colony has one queen, thousands of workers and a few drones. The workers build the comb from wax, feed the "
    "young and guard the hive.\n\n"
    "Bees also pollinate many crops, which makes them important for farming. Without them, apples, almonds and "
    "berries would be much harder to grow. Many people keep bees in their gardens to help them thrive."
)
LOOP = (
    "Here is my plan for the day.\n\n"
    "I will take the train to the city. I will take the train to the city. I will take the train to the city. "
    "I will take the train to the city. I will take the tr"
)

# Rules that can always repair ANSWER (the rest depend on the text: "at least" counts it may be too short for, the
# response language, a second answer).
ALWAYS = [
    "punctuation:no_comma", "change_case:english_lowercase", "change_case:english_capital",
    "change_case:capital_word_frequency", "startend:end_checker", "startend:quotation", "detectable_content:postscript",
    "detectable_content:number_placeholders", "detectable_format:title", "detectable_format:json_format",
    "detectable_format:constrained_response", "keywords:existence", "keywords:forbidden_words",
    "combination:repeat_prompt", "detectable_format:number_highlighted_sections",
]  # fmt: skip


def test_cut_repetition_drops_repeats_and_the_unfinished_tail():
    assert cut_repetition(LOOP, truncated=True) == "Here is my plan for the day.\n\nI will take the train to the city."
    # Near repeats count: the same first six words of a long sentence.
    loop = ("I will take a seat in the first car which is a fast train. "
            "I will take a seat in the first car which is a slow train.")  # fmt: skip
    assert cut_repetition(loop, truncated=False) == "I will take a seat in the first car which is a fast train."
    # Repeated lines (a cycle of placeholders) go too; an answer with no repeats is untouched.
    assert cut_repetition("[Name]\n[Skills]\n[Name]\n[Skills]\n[Skil", truncated=True) == "[Name]\n[Skills]"
    assert cut_repetition(ANSWER, truncated=False) == ANSWER


@pytest.mark.parametrize("cid", ALWAYS)
@pytest.mark.parametrize("seed", range(4))
def test_each_rule_repairs_an_ordinary_answer(cid: str, seed: int):
    kwargs = get_constraint(cid).sample_kwargs(random.Random(seed))
    if cid == "combination:repeat_prompt":
        kwargs = {"prompt_to_repeat": "Write about bees."}
    fixed = repair(ANSWER, [cid], [kwargs], seed=seed)
    if all(check_all(ANSWER, [cid], [kwargs])):  # nothing to repair: no pair
        assert fixed is None
        return
    assert fixed is not None, (cid, kwargs)
    for mode in ("ifeval", "fixed"):
        assert all(check_all(fixed, [cid], [kwargs], mode=mode))


def test_repairs_are_minimal_edits():
    assert repair(ANSWER, ["change_case:english_lowercase"], [{}]) == ANSWER.lower()
    assert repair(ANSWER, ["startend:quotation"], [{}]) == f'"{ANSWER}"'
    fixed = repair(ANSWER, ["startend:end_checker"], [{"end_phrase": "Any other questions?"}])
    assert fixed == ANSWER + " Any other questions?"


def test_combinations_and_layouts():
    ids = ["detectable_format:title", "length_constraints:number_paragraphs", "punctuation:no_comma"]
    kwargs = [{}, {"num_paragraphs": 4}, {}]
    fixed = repair(ANSWER, ids, kwargs)
    assert fixed is not None and fixed.startswith("<<") and fixed.count("***") == 3 and "," not in fixed
    bullets = repair(ANSWER, ["detectable_format:number_bullet_lists"], [{"num_bullets": 3}])
    assert bullets is not None and bullets.count("\n* ") == 3
    two = repair(ANSWER, ["combination:two_responses"], [{}], others=["Bees make honey. They live in hives."])
    assert two == ANSWER + "\n******\nBees make honey. They live in hives."
    # With no other sample (greedy sampling), the answer's two halves are the two responses.
    halves = repair(ANSWER, ["combination:two_responses"], [{}])
    assert halves is not None and halves.startswith("Bees are small insects") and halves.count("\n******\n") == 1
    assert halves.split("\n******\n")[1].startswith("Bees also pollinate")  # 7 sentences: 4 and 3


def test_length_floors_borrow_from_the_other_answers_and_caps_drop_sentences():
    other = "Bees dance to tell the hive where the flowers are. Honey found in old tombs was still good to eat."
    floor = {"relation": "at least", "num_sentences": 8}
    assert repair(ANSWER, ["length_constraints:number_sentences"], [floor]) is None  # 7 sentences, nothing to add
    fixed = repair(ANSWER, ["length_constraints:number_sentences"], [floor], others=[other])
    assert fixed is not None and "Bees dance to tell the hive" in fixed
    cap = {"relation": "less than", "num_words": 30}
    fixed = repair(ANSWER, ["length_constraints:number_words"], [cap])
    assert fixed == "Bees are small insects that live in large colonies. They collect nectar from flowers and turn it into honey."


def test_what_a_rule_cannot_do_gives_none():
    assert repair(ANSWER, ["language:response_language"], [{"language": "de"}]) is None
    assert repair(ANSWER, ["length_constraints:number_words"], [{"relation": "at least", "num_words": 900}]) is None
    assert repair("Bees make honey.", ["combination:two_responses"], [{}]) is None  # one sentence: no second answer
    # A loop cut off by the token budget repairs into a finished answer even with no constraint missed.
    assert repair(LOOP, ["punctuation:no_comma"], [{}], truncated=True) == (
        "Here is my plan for the day.\n\nI will take the train to the city."
    )


def _sample(prompt: Prompt, index: int, completion: str, finish: str = "stop") -> Sample:
    return Sample(prompt_id=prompt.id, prompt=prompt.prompt, completion=completion, index=index, finish_reason=finish)


def test_repair_pairs_pairs_every_fixable_miss_and_counts_the_rest():
    lower = Prompt(prompt="Write about bees in lowercase.", instruction_id_list=["change_case:english_lowercase"],
                   kwargs=[{}])  # fmt: skip
    german = Prompt(prompt="Write about bees in German.", instruction_id_list=["language:response_language"],
                    kwargs=[{"language": "de"}])  # fmt: skip
    samples = [
        _sample(lower, 0, ANSWER.lower()),  # satisfied and finished: no pair
        _sample(lower, 1, ANSWER),  # violated: repaired
        _sample(lower, 2, LOOP, "length"),  # cut off: repaired, rejected marked truncated
        _sample(lower, 3, ANSWER + " More."),  # over the per-prompt cap
        _sample(german, 0, ANSWER),
    ]
    pairs, stats = repair_pairs(samples, {lower.id: lower, german.id: german}, max_per_prompt=2)
    assert [(p.rejected, p.rejected_truncated) for p in pairs] == [(ANSWER, False), (LOOP, True)]
    assert all(p.method == "repair" and all(check_all(p.chosen, ["change_case:english_lowercase"], [{}])) for p in pairs)
    assert pairs[1].chosen == "here is my plan for the day.\n\ni will take the train to the city."
    assert stats.as_dict() == {"samples": 5, "pairs": 2, "already_satisfied": 1, "truncated": 1,
                               "unrepairable": {"language:response_language": 1}}  # fmt: skip
