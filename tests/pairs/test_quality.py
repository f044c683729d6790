"""Targets that meet the constraints but not the request: the cases are verified targets of the embedded model's
E4 run (seed 1), and every rule has a look-alike it must keep."""

from __future__ import annotations

from posttrain.constraints import check_all
from posttrain.pairs.quality import flaw
from posttrain.pairs.targets import sft_targets
from posttrain.records import Prompt, Sample

TASK = "Write a tweet-length announcement about serving on a jury."


def _prompt(text: str, ids: list[str], kwargs: list[dict], task: str = TASK) -> Prompt:
    return Prompt(prompt=text, instruction_id_list=ids, kwargs=kwargs, base_task=task)


POSTSCRIPT_NO_COMMA = _prompt(
    f"{TASK} End your answer with a postscript that begins with P.S. Do not use any commas in your answer.",
    ["detectable_content:postscript", "punctuation:no_comma"],
    [{"postscript_marker": "P.S."}, {}],
)


def test_persona_talk_is_a_flaw():
    p = _prompt(f"{TASK} Your response must contain the following words: 'designed'.", ["keywords:existence"],
                [{"keywords": ["designed"]}])  # fmt: skip
    answer = "A helpful AI assistant, SmolLM, is designed to provide assistance and support to users."
    assert all(check_all(answer, p.instruction_id_list, p.kwargs))
    assert flaw(answer, p, TASK) == "persona"
    assert flaw("I'm ready to assist. What can I help you with today? " * 2, p, TASK) == "persona"


def test_restating_an_instruction_is_a_flaw_but_its_literals_are_not():
    answer = "Jury duty starts Monday and I am proud to serve my town in court\nP.S. Do not use any commas in your answer."
    assert all(check_all(answer, POSTSCRIPT_NO_COMMA.instruction_id_list, POSTSCRIPT_NO_COMMA.kwargs))
    assert flaw(answer, POSTSCRIPT_NO_COMMA, TASK) == "restates_instructions"
    # The asked-for end phrase is eight words of the instruction: saying it is obeying, not echoing.
    end = "Is there anything else I can help with?"
    p = _prompt(f'{TASK} Finish your response with this exact phrase "{end}". No other words should follow.',
                ["startend:end_checker"], [{"end_phrase": end}])  # fmt: skip
    good = f"Called for jury duty this week and ready to listen to every side with care and patience. {end}"
    assert all(check_all(good, p.instruction_id_list, p.kwargs))
    assert flaw(good, p, TASK) is None


def test_copying_the_task_is_a_flaw_unless_the_prompt_asks_for_the_copy():
    answer = "Write a tweet-length announcement about serving on a jury. It is about serving on a jury."
    p = _prompt(f"{TASK} Wrap your entire response with double quotation marks.", ["startend:quotation"], [{}])
    assert flaw(f'"{answer}"', p, TASK) == "restates_task"
    repeat = _prompt(
        f"{TASK} First repeat the request word for word without change, then give your answer.",
        ["combination:repeat_prompt"], [{"prompt_to_repeat": TASK}],
    )  # fmt: skip
    good = f"{TASK}\nBig news for my neighbours: I was picked for a jury this month and will serve with pride."
    assert flaw(good, repeat, TASK) is None


def test_a_few_words_are_a_flaw_only_when_nothing_asks_for_brevity():
    p = _prompt(f"{TASK} Wrap your entire response with double quotation marks.", ["startend:quotation"], [{}])
    assert flaw('"Jury duty starts Monday."', p, TASK) == "too_short"
    brief = _prompt(f"{TASK} Answer with less than 10 words.", ["length_constraints:number_words"],
                    [{"num_words": 10, "relation": "less than"}])  # fmt: skip
    assert flaw("Jury duty starts Monday.", brief, TASK) is None


def test_drop_flawed_takes_the_next_candidate_and_counts_the_reason():
    p = _prompt(f"{TASK} Respond in English, all in lowercase.", ["change_case:english_lowercase"], [{}])
    persona = "i'm here to help you with any question about jury duty or anything else you would like to know."
    clean = "called for jury duty this week and proud to serve my town. wish me patience and a short trial."
    samples = [
        Sample(prompt_id=p.id, prompt=p.prompt, completion=text, index=i, finish_reason="stop")
        for i, text in enumerate([persona, clean])
    ]
    rows, stats = sft_targets(samples, {p.id: p})
    assert rows[0]["completion"] == persona and stats.flawed == {}
    rows, stats = sft_targets(samples, {p.id: p}, drop_flawed=True)
    assert [r["completion"] for r in rows] == [clean] and stats.flawed == {"persona": 1}
    rows, stats = sft_targets(samples[:1], {p.id: p}, drop_flawed=True)
    assert rows == [] and stats.without_target == 1
