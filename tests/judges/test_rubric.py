"""The CrossEval-style rubric judge: score parsing, prompt rendering, retries, the −1 path, and its use as a reward
in a Mixture of Judges. The judge model is a scripted backend (a real implementation of the Backend protocol whose
answers are given up front); the embedded model runs in tests/evals/test_rubric_eval.py."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from posttrain.errors import InputError
from posttrain.judges import JUDGES, MixtureOfJudges, get_judge, judge_options
from posttrain.judges.base import Item, Judge, as_prompt
from posttrain.judges.rubric import (
    SHORT_RESPONSE_NOTE,
    SYSTEM_PROMPT,
    Reference,
    RubricJudge,
    normalised,
    parse_references,
    parse_score,
    rationale,
    read_score,
    render_user_prompt,
    to_100,
)
from posttrain.models.backend import Backend, Completion, SamplingParams, as_messages


class ScriptedBackend:
    """A Backend whose judge answers come from `answer(user_turn_text)`; it records every call."""

    name = "scripted"

    def __init__(self, answer: Callable[[str], str]):
        self.answer = answer
        self.calls: list[tuple[list[Any], SamplingParams]] = []

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        self.calls.append((list(prompts), params))
        out = []
        for prompt in prompts:
            text = self.answer(as_messages(prompt)[-1]["content"])
            out.append([Completion(text, len(str(prompt).split()), len(text.split()), "stop") for _ in range(n)])
        return out

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError("the rubric judge only generates")


def evaluated(user_turn: str) -> str:
    """The response being judged, read back from the rendered user turn."""
    return user_turn.split("[Model Response to be Evaluated]:\n", 1)[1].split("\n\nWrite your evaluation", 1)[0]


def evaluation(score: str, holistic: str = "Accurate and complete; a minor style issue.") -> str:
    """A judge answer in the requested format."""
    return (
        "#### User Prompt Analysis\n- The user wants a short factual answer.\n\n"
        "#### Reference Examples Insights\n- Annotators gave 4/5 and 3/5; a missing unit cost about 1 point.\n\n"
        "#### Model Response Evaluation\n- Pros: correct value, right unit.\n- Cons: slightly terse (-0.5 points).\n\n"
        f"#### Holistic Assessment\n{holistic}\n\n#### Evaluation Score\n{score}"
    )


# ------------------------------------------------------------------------------------------------ parsing

VALID = [
    (evaluation("Score: 4/5"), 4.0),
    (evaluation("**Score:** 4 / 5"), 4.0),
    (evaluation("Score: [4]/5"), 4.0),
    ("Overall I'd give it a score 4.5/5.", 4.5),
    (evaluation("**Score: 2/5**"), 2.0),
    (evaluation("Score: **3**/5"), 3.0),
    ("#### Evaluation Score\n**3/5**", 3.0),
    ("The response earns a score of 2 out of 5.", 2.0),
    ("SCORE: 1/5", 1.0),
    ("Final score = 5 / 5.", 5.0),
    (evaluation("Score: 3.5/5"), 3.5),
    (evaluation("Score: 4.0/5"), 4.0),
    (evaluation("Score: (2)/5"), 2.0),
    ("Score:\n4/5", 4.0),
    # several: the last one decides (a reference's score, a first thought, then the verdict)
    ("Reference 1 would get Score: 5/5. Reconsidering the errors...\n#### Evaluation Score\nScore: 2/5", 2.0),
    (evaluation("Score: 4/5\n\nOn reflection the unit is wrong.\nScore: 3/5"), 3.0),
]

INVALID = [
    ("", "no 'Score: X/5' line"),
    ("The answer is correct and well explained.", "no 'Score: X/5' line"),
    (evaluation("Score: [X]/5"), "no 'Score: X/5' line"),  # the template echoed back
    (evaluation("Score: 4"), "no 'Score: X/5' line"),  # no scale
    (evaluation("Score: 8/10"), "no 'Score: X/5' line"),  # another scale
    (evaluation("Score: 4/50"), "no 'Score: X/5' line"),
    ("I would rate this 4/5.", "no 'Score: X/5' line"),  # CrossEval's format needs the word "score"
    ("Scored 4/5 by the first annotator.", "no 'Score: X/5' line"),
    (evaluation("Score: 0/5"), "outside 1-5"),
    (evaluation("Score: 6/5"), "outside 1-5"),
    (evaluation("Score: -1/5"), "outside 1-5"),
    (evaluation("Score: 5.5/5"), "outside 1-5"),
    (evaluation("Score: 3.7/5"), "neither a whole nor a half point"),
    (evaluation("Score: 4.25/5"), "neither a whole nor a half point"),
    (evaluation("Score: 4/5\nActually it deserves more. Score: 9/5"), "outside 1-5"),  # the last one decides
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_scores_are_read(text, expected):
    assert read_score(text) == (expected, "")
    assert parse_score(text) == expected


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_malformed_and_out_of_range_outputs_have_no_score(text, problem):
    score, why = read_score(text)
    assert score is None and problem in why
    assert parse_score(text) is None


def test_rationale_is_the_holistic_assessment_or_the_text_before_the_score():
    assert rationale(evaluation("Score: 4/5", "Correct, but terse.")) == "Correct, but terse."
    assert rationale("Looks right to me. **Score:** 4/5") == "Looks right to me."
    assert rationale("No score here at all.") == "No score here at all."


def test_scales():
    assert [to_100(s) for s in (1, 2, 3, 4, 5)] == [1, 25.75, 50.5, 75.25, 100]
    assert [normalised(s) for s in (1, 3, 4.5, 5)] == [0, 0.5, 0.875, 1]


# ---------------------------------------------------------------------------------------------- rendering

REFS = [
    {"response": "About 100 degrees.", "ratings": [4, 3], "explanations": ["No unit.", "Terse and no unit."]},
    {"response": "It boils at 90 °C.", "ratings": [1], "explanations": ["Wrong."]},
]


def test_prompt_with_attached_text_and_references():
    text = render_user_prompt("Summarise it.", "A summary.", parse_references(REFS), attached="  The attached text.\n")
    order = ["[Attached]:\nThe attached text.", "[User Prompt]:\nSummarise it.", "calibrate", "[Reference Example 1]:",
             "Response: About 100 degrees.", "Rating 1: 4/5 | Explanation 1: No unit.",
             "Rating 2: 3/5 | Explanation 2: Terse and no unit.", "[Reference Example 2]:", "Rating 1: 1/5 | Explanation 1: Wrong.",
             "[Model Response to be Evaluated]:\nA summary.", "#### User Prompt Analysis", "#### Reference Examples Insights",
             "#### Model Response Evaluation", "#### Holistic Assessment", "#### Evaluation Score\nScore: [X]/5"]  # fmt: skip
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "consistent with the reference examples" in text
    assert SHORT_RESPONSE_NOTE not in text  # two words: not "nearly empty"


def test_prompt_without_references_leaves_out_the_insights_section():
    text = render_user_prompt("What is 2+2?", "It is 4.")
    assert text.startswith("[User Prompt]:\nWhat is 2+2?")
    assert "[Attached]" not in text and "Reference" not in text and "calibrate" not in text
    assert "Pros:" in text and "Cons:" in text and text.index("#### Holistic Assessment") < text.index("Score: [X]/5")


def test_near_empty_response_gets_crossevals_note_and_a_retry_gets_a_reminder():
    text = render_user_prompt("Write a poem.", "  Roses.  ", reminder="REMINDER")
    assert text.endswith(SHORT_RESPONSE_NOTE + "\n\nREMINDER")
    assert "[Model Response to be Evaluated]:\nRoses.\n" in text


def test_references_fields_and_errors():
    assert parse_references([{"response": "r", "ratings": 4}]) == [Reference("r", (4.0,), ())]
    assert parse_references([{"response": "r", "ratings": [3.5, 4], "explanations": "half"}])[0].explanations == ("half",)
    assert parse_references(None) == []
    bad = [
        ({"response": "r", "ratings": [4, 7]}, r"references\[0\]\.ratings\[1\]: rating 7 is outside 1-5"),
        ({"ratings": [4]}, r"references\[0\]\.response: missing"),
        ({"response": 3, "ratings": [4]}, r"references\[0\]\.response: expected a string"),
        ({"response": "r", "ratings": ["good"]}, r"a rating is a number from 1 to 5, got 'good'"),
        ({"response": "r", "ratings": [4], "explanations": ["a", "b"]}, "2 explanations but 1 ratings"),
        ({"response": "r", "rating": 4}, "unknown field 'rating'"),
        ("just text", "expected an object with 'response' and 'ratings'"),
    ]
    for ref, message in bad:
        with pytest.raises(InputError, match=message):
            parse_references([ref])
    with pytest.raises(InputError, match="expected a list"):
        parse_references({"response": "r"})


# -------------------------------------------------------------------------------------------------- judge


def scores_by_response(table: dict[str, str]) -> ScriptedBackend:
    """Answers with `evaluation(table[response])` for the response being judged."""
    return ScriptedBackend(lambda user: evaluation(table[evaluated(user)]))


def test_registered_as_a_reward_judge_with_its_options():
    assert JUDGES["rubric"] == "posttrain.judges.rubric:RubricJudge"
    judge = get_judge("rubric", model=scores_by_response({}))
    assert isinstance(judge, RubricJudge) and isinstance(judge, Judge) and isinstance(judge.backend, Backend)
    assert judge.kind == "reward" and judge.name == "rubric"
    for option in ("model", "max_new_tokens", "references", "threshold", "retries", "batch_size", "system_prompt", "name"):
        assert option in judge_options("rubric")
    with pytest.raises(InputError, match="has no option 'retry'"):
        get_judge("rubric", model=scores_by_response({}), retry=2)
    with pytest.raises(InputError, match="threshold is on the 1-5 score scale"):
        get_judge("rubric", model=scores_by_response({}), threshold=0.5)


def test_scores_become_rewards_in_0_1_with_the_raw_score_in_the_detail():
    backend = scores_by_response({"Paris.": "Score: 5/5", "Lyon.": "**Score:** 1 / 5", "Paris, I think.": "Score: [3.5]/5"})
    judge = RubricJudge(backend, max_new_tokens=64, batch_size=2)
    out = judge.judge(["Capital of France?"] * 3, ["Paris.", "Lyon.", "Paris, I think."])
    assert [j.value for j in out] == [1, 1, 1]  # no threshold: a reward judge scores, it does not gate
    assert [j.score for j in out] == [1.0, 0.0, 0.625]
    assert out[2].detail == "3.5/5: Accurate and complete; a minor style issue."
    # greedy, in batches of batch_size, one completion each, with the rubric as the system turn
    assert [len(prompts) for prompts, _ in backend.calls] == [2, 1]
    params = backend.calls[0][1]
    assert params.temperature == 0 and params.max_new_tokens == 64
    assert backend.calls[0][0][0][0] == {"role": "system", "content": SYSTEM_PROMPT}


def test_threshold_on_the_1_to_5_scale():
    backend = scores_by_response({"a": "Score: 4/5", "b": "Score: 3.5/5", "c": "Score: 2/5"})
    judge = get_judge("rubric", model=backend, threshold=3.5, name="helpfulness")
    assert [j.value for j in judge.judge(["q"] * 3, ["a", "b", "c"])] == [1, 1, 0]
    assert judge.name == "helpfulness"


def test_a_retry_carries_a_reminder_and_its_score_counts():
    def answer(user: str) -> str:
        return "Score: 4/5" if "could not be scored" in user else "It is a decent answer, I'd say 4."

    backend = ScriptedBackend(answer)
    judge = RubricJudge(backend)
    (result,) = judge.assess([Item(as_prompt("q"), "An answer.")])
    assert (result.score, result.attempts, result.output) == (4.0, 2, "Score: 4/5")
    retry_turn = backend.calls[1][0][0][-1]["content"]
    assert retry_turn.endswith('(no \'Score: X/5\' line). Write the evaluation again and end it with the line "Score: X/5", where X is a whole number from 1 to 5.')
    assert backend.calls[1][1].temperature == 0  # retry_temperature defaults to greedy


def test_no_valid_score_after_every_retry_is_minus_one_not_an_exception():
    backend = ScriptedBackend(lambda user: "Score: 7/5")
    judge = RubricJudge(backend, retries=2, retry_temperature=0.7)
    (j,) = judge.judge(["q"], ["An answer."])
    assert j.value == -1 and j.score is None
    assert j.detail.startswith("no valid score after 3 attempt(s): the last score, 7/5, is outside 1-5; output: 'Score: 7/5'")
    assert [params.temperature for _, params in backend.calls] == [0, 0.7, 0.7]
    assert len({params.seed for _, params in backend.calls}) == 3  # sampled retries differ from each other
    assert "(the last score, 7/5, is outside 1-5)" in backend.calls[1][0][0][-1]["content"]

    no_retry = ScriptedBackend(lambda user: "no score")
    assert RubricJudge(no_retry, retries=0).judge(["q"], ["a"])[0].value == -1
    assert len(no_retry.calls) == 1


def test_only_the_items_whose_generation_fails_get_minus_one():
    def answer(user: str) -> str:
        if "BOOM" in evaluated(user):
            raise RuntimeError("context length exceeded")
        return "Score: 4/5"

    judge = RubricJudge(ScriptedBackend(answer), batch_size=3)
    out = judge.judge(["q"] * 3, ["fine", "BOOM", "also fine"])
    assert [j.value for j in out] == [1, -1, 1]
    assert out[1].detail == "judge failed: RuntimeError: context length exceeded"


def test_references_and_attached_text_come_from_the_prompt_record():
    seen: list[str] = []
    backend = ScriptedBackend(lambda user: seen.append(user) or "Score: 3/5")
    judge = RubricJudge(backend, references=[{"response": "Default reference.", "ratings": [2]}])
    prompts = [
        {"prompt": "q1", "references": [{"response": "Own reference.", "ratings": [5], "explanations": ["Great."]}],
         "attached": "Long document."},
        {"prompt": "q2"},
    ]  # fmt: skip
    judge.judge(prompts, ["r1", "r2"])
    assert "[Attached]:\nLong document." in seen[0] and "Rating 1: 5/5 | Explanation 1: Great." in seen[0]
    assert "Default reference." not in seen[0]  # a prompt's own references win over the option
    assert "Response: Default reference.\nRating 1: 2/5" in seen[1] and "[Attached]" not in seen[1]


def test_bad_references_in_a_prompt_are_bad_input_before_anything_is_generated():
    backend = ScriptedBackend(lambda user: "Score: 3/5")
    judge = RubricJudge(backend)
    with pytest.raises(InputError, match=r"references\[0\]\.ratings\[0\]: rating 9 is outside 1-5"):
        judge.judge(["fine", {"prompt": "q", "references": [{"response": "r", "ratings": [9]}]}], ["a", "b"])
    assert backend.calls == []
    with pytest.raises(InputError, match="rubric judge option references"):
        RubricJudge(backend, references=[{"response": "r", "ratings": [0]}])


def test_system_prompt_override_and_none():
    backend = ScriptedBackend(lambda user: "Score: 3/5")
    RubricJudge(backend, system_prompt="Be harsh.").judge(["q"], ["a"])
    RubricJudge(backend, system_prompt="").judge(["q"], ["a"])
    assert backend.calls[0][0][0][0] == {"role": "system", "content": "Be harsh."}
    assert [m["role"] for m in backend.calls[1][0][0]] == ["user"]


def test_multi_turn_prompts_are_shown_as_a_conversation():
    seen: list[str] = []
    backend = ScriptedBackend(lambda user: seen.append(user) or "Score: 3/5")
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Tell me a joke."}]  # fmt: skip
    RubricJudge(backend).judge([conversation], ["Why did the chicken cross the road?"])
    assert "[User Prompt]:\nuser: Hi\n\nassistant: Hello!\n\nuser: Tell me a joke." in seen[0]


# ------------------------------------------------------------------------------------------------ mixture


def test_rubric_judge_is_the_reward_of_a_mixture():
    backend = scores_by_response({"Paris is the capital.": "Score: 5/5", "Lyon.": "Score: 2/5",
                                  "I can't help with that.": "Score: 1/5", "Paris.": "Score: 4/5",
                                  "Marseille?": "no score at all"})  # fmt: skip
    mixture = MixtureOfJudges([get_judge("refusal")], reward=RubricJudge(backend))
    results = mixture.evaluate(["Capital of France?"] * 4, ["Paris is the capital.", "Lyon.", "I can't help with that.", "Marseille?"],
                               baseline=["Paris."] * 4)  # fmt: skip
    assert [r.reward for r in results] == [1.0, 0.25, 0.0, None]
    assert all(r.baseline_reward == 0.75 for r in results)
    assert results[0].calibrated == pytest.approx(1 / (1 + math.exp(-0.25)))
    assert results[1].calibrated == pytest.approx(1 / (1 + math.exp(0.5)))
    # R_cr: calibrated when the constraints hold, 0 for the refusal, None when the reward judge failed (-1)
    assert [r.constrained_reward for r in results][:3] == [results[0].calibrated, results[1].calibrated, 0.0]
    assert results[3].reward_judgment.value == -1 and results[3].constrained_reward is None
    # the baseline is scored once per (prompt, baseline), not once per completion
    judged = [evaluated(p[-1]["content"]) for prompts, _ in backend.calls for p in prompts]
    assert judged.count("Paris.") == 1
    assert re.fullmatch(r"5/5: .+", results[0].reward_judgment.detail)
