"""The judge contract: inputs, the registry's errors, -1 for a crashing sample, verdict records."""

from __future__ import annotations

import pytest

from posttrain.errors import InputError
from posttrain.judges import JUDGES, Judge, Judgment, completion_text, get_judge, judge_options
from posttrain.judges.base import Item, as_prompt
from posttrain.records import Prompt, Verdict


class Fragile(Judge):
    """A real judge with a real bug: it divides by the completion's length."""

    name = "fragile"

    def judge_one(self, item: Item) -> Judgment:
        return Judgment(1, 1 / len(item.completion))


def test_a_crash_on_one_sample_is_minus_one_for_that_sample_only():
    out = Fragile().judge(["a", "b", "c"], ["ok", "", "fine"])
    assert [j.value for j in out] == [1, -1, 1]
    assert out[1].score is None
    assert "ZeroDivisionError" in out[1].detail


def test_unknown_judge_suggests_the_closest_name():
    with pytest.raises(InputError, match="unknown judge 'refusl'; did you mean 'refusal'"):
        get_judge("refusl")
    with pytest.raises(InputError, match="Available: ifeval, math, code"):
        get_judge("nothing-like-it")


def test_unknown_option_names_the_accepted_ones():
    with pytest.raises(InputError, match="has no option 'mod' \\(did you mean 'mode'\\?\\)"):
        get_judge("ifeval", mod="fixed")
    assert "strict_format" in judge_options("math")
    with pytest.raises(InputError, match="judge 'reward_model' needs the option 'model'"):
        get_judge("reward_model")


def test_every_registered_judge_resolves_to_a_class():
    from posttrain.judges import judge_class

    for name in JUDGES:
        assert issubclass(judge_class(name), Judge)


def test_missing_gold_is_an_input_error_not_a_verdict():
    with pytest.raises(InputError, match="'math' judge compares with a gold answer, but 1 of 2 samples have none"):
        get_judge("math").judge([{"prompt": "1+1?", "gold": "2"}, "2+2?"], ["2", "4"])
    # gold= overrides the prompts' gold fields
    assert [j.value for j in get_judge("math").judge(["1+1?", "2+2?"], ["2", "5"], gold=["2", "4"])] == [1, 0]


def test_inputs_must_pair_up():
    with pytest.raises(InputError, match="2 prompts but 1 completions"):
        get_judge("refusal").judge(["a", "b"], ["x"])
    with pytest.raises(InputError, match="1 gold answers but 2 completions"):
        get_judge("math").judge(["a", "b"], ["x", "y"], gold=["1"])


def test_prompts_and_completions_in_every_accepted_shape():
    assert as_prompt("hi").text == "hi"
    assert as_prompt([{"role": "user", "content": "hi"}]).text == "hi"
    record = Prompt(prompt="p", gold="1")
    assert as_prompt(record) is record
    assert as_prompt({"prompt": "p", "gold": "1"}).gold == "1"
    with pytest.raises(InputError, match="needs a 'prompt' key"):
        as_prompt({"question": "p"})
    assert completion_text([{"role": "assistant", "content": "done"}]) == "done"
    assert completion_text("text") == "text"


def test_a_judgment_becomes_a_verdict_record():
    verdict = Judgment(0, 0.5, "half").to_verdict("s1", "ifeval", "p1")
    assert isinstance(verdict, Verdict)
    assert (verdict.sample_id, verdict.judge, verdict.value, verdict.score, verdict.prompt_id) == ("s1", "ifeval", 0, 0.5, "p1")
    assert verdict.id == Verdict(sample_id="s1", judge="ifeval", value=1).id  # id = (sample, judge): reruns dedupe


def test_importing_the_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, posttrain.judges; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
