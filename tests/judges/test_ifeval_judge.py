"""The IFEval judge: the constraint library's verdicts per sample, partial credit, loose mode, failures as -1."""

from __future__ import annotations

import json

import pytest

from posttrain.constraints import check_all, partial_credit
from posttrain.judges import get_judge, judge_samples
from posttrain.records import Prompt, Sample


@pytest.fixture(scope="module")
def ifeval_samples(ifeval_input):
    prompts, samples = {}, []
    responses = ["Hello, world.", "HELLO WORLD", "hello world\n\nP.S. bye", '"wrapped in quotes"', "<think>x, y</think>ok"]
    for line in ifeval_input.read_text().splitlines()[:60]:
        row = json.loads(line)
        p = Prompt(prompt=row["prompt"], instruction_id_list=row["instruction_id_list"], kwargs=row["kwargs"])
        prompts[p.id] = p
        for i, text in enumerate(responses):
            samples.append(Sample(prompt_id=p.id, prompt=p.prompt, completion=text, index=i))
    return prompts, samples


@pytest.mark.parametrize("mode", ["ifeval", "fixed"])
def test_verdicts_are_the_constraint_library_on_each_sample(ifeval_samples, mode):
    prompts, samples = ifeval_samples
    verdicts = judge_samples(get_judge("ifeval", mode=mode), samples, prompts)
    for s, v in zip(samples, verdicts, strict=True):
        p = prompts[s.prompt_id]
        ok = check_all(s.completion, p.instruction_id_list, p.kwargs, mode=mode, strip_thinking=True)
        assert (v.sample_id, v.prompt_id, v.judge) == (s.id, p.id, "ifeval")
        assert (v.value, v.score) == (int(all(ok)), partial_credit(ok))
    assert {v.value for v in verdicts} == {0, 1}


def test_score_is_partial_credit_and_detail_names_the_violations():
    prompt = {"prompt": "x", "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"],
              "kwargs": [{}, {}]}  # fmt: skip
    (j,) = get_judge("ifeval").judge([prompt], ["hello, world"])
    assert (j.value, j.score) == (0, 0.5)
    assert j.detail == "violated: punctuation:no_comma"


def test_loose_accepts_what_strict_rejects():
    prompt = {"prompt": "x", "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}
    response = "Sure! Here it is:\nall lowercase text here"
    assert get_judge("ifeval").judge([prompt], [response])[0].value == 0
    assert get_judge("ifeval", loose=True).judge([prompt], [response])[0].value == 1


def test_bad_constraint_kwargs_give_minus_one_not_a_crash():
    prompt = {"prompt": "x", "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"bogus": 1}]}
    (j,) = get_judge("ifeval").judge([prompt], ["some words"])
    assert j.value == -1 and "bogus" in j.detail
