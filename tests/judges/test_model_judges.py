"""Model judges: a reward model from a directory, and CGPO's token-probability judges (score = manual softmax)."""

from __future__ import annotations

import pytest
import torch

from posttrain.errors import InputError
from posttrain.judges import get_judge
from posttrain.judges.llm_prob import TEMPLATES
from posttrain.models.backend import as_messages

PROMPTS = ["What is the capital of France?", [{"role": "user", "content": "Name a prime number."}], "Hi"]
RESPONSES = ["Paris is the capital of France.", "7", "Hello! How can I help you today? " * 5]


# ------------------------------------------------------------------------------------------- reward model


def test_reward_model_scores_match_one_sequence_at_a_time(tiny_rm_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    judge = get_judge("reward_model", model=str(tiny_rm_dir), batch_size=3)
    out = judge.judge(PROMPTS, RESPONSES)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_rm_dir)
    for prompt, response, j in zip(PROMPTS, RESPONSES, out, strict=True):
        text = tok.apply_chat_template([*as_messages(prompt), {"role": "assistant", "content": response}], tokenize=False)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.inference_mode():
            expected = model(input_ids=ids).logits[0, 0].item()
        assert j.score == pytest.approx(expected, abs=1e-5)
        assert j.value == 1  # no threshold: a reward judge scores, it does not gate
    assert judge.kind == "reward"
    assert len({round(j.score, 6) for j in out}) == 3


def test_reward_model_threshold_and_name(tiny_rm_dir):
    scores = [j.score for j in get_judge("reward_model", model=str(tiny_rm_dir)).judge(PROMPTS, RESPONSES)]
    middle = sorted(scores)[1]
    judge = get_judge("reward_model", model=str(tiny_rm_dir), threshold=middle, name="helpfulness")
    assert [j.value for j in judge.judge(PROMPTS, RESPONSES)] == [int(s >= middle) for s in scores]
    assert judge.name == "helpfulness"


def test_reward_model_needs_a_local_directory(tmp_path):
    with pytest.raises(InputError, match="not a local model directory"):
        get_judge("reward_model", model=str(tmp_path / "missing"))


# ------------------------------------------------------------------------------------- llm_prob (tiny)


def manual_score(backend, ids: list[int], positive: list[str], negative: list[str]) -> float:
    with torch.inference_mode():
        probs = torch.softmax(backend.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
    first = lambda words: {backend.tokenizer(w, add_special_tokens=False).input_ids[0] for w in words}  # noqa: E731
    pos = sum(probs[i].item() for i in first(positive))
    neg = sum(probs[i].item() for i in first(negative))
    return pos / (pos + neg)


def test_custom_template_on_a_tiny_model_batched_equals_alone(tiny_backend):
    judge = get_judge("llm_prob", model=tiny_backend, text="Is this polite? {response}\nAnswer:",
                      positive=" yes", negative=" no", chat=False, batch_size=2)  # fmt: skip
    out = judge.judge(PROMPTS, RESPONSES)
    for response, j in zip(RESPONSES, out, strict=True):
        ids = tiny_backend.tokenizer(f"Is this polite? {response}\nAnswer:").input_ids
        assert j.score == pytest.approx(manual_score(tiny_backend, ids, [" yes"], [" no"]), rel=1e-4)
        assert j.value == int(j.score >= 0.5)
    assert judge.name == "llm_prob" and not judge.requires_gold


def test_factuality_needs_gold_and_unknown_templates_are_errors(tiny_backend):
    judge = get_judge("llm_prob", model=tiny_backend, template="factuality")
    assert judge.requires_gold and judge.name == "factuality"
    with pytest.raises(InputError, match="compares with a gold answer"):
        judge.judge(["q"], ["a"])
    with pytest.raises(InputError, match="unknown template 'facts'"):
        get_judge("llm_prob", model=tiny_backend, template="facts")


def test_cgpo_templates_as_published():
    assert TEMPLATES["false_refusal"].text == "[INST] {response} [\\INST]"
    assert TEMPLATES["false_refusal"].negative == ("True",)  # "True" = it is a refusal
    factuality = TEMPLATES["factuality"].text
    assert factuality.startswith("Here is a question and a ground truth answer:")
    assert factuality.endswith(
        "Does the AI's answer contains the factual information from the above ground truth answer? "
        "Answer in TRUE or FALSE."
    )


# ------------------------------------------------------------------------------- llm_prob (embedded)


@pytest.fixture(scope="module")
def smollm():
    from posttrain.models import load_backend

    return load_backend("embedded", threads=1)  # robust on a shared machine; a 2-thread run is no faster here


@pytest.mark.model
def test_factuality_on_the_embedded_model_equals_a_manual_softmax(smollm):
    judge = get_judge("llm_prob", model=smollm, template="factuality")
    prompts = [{"prompt": "What is the capital of France?", "gold": "Paris"}] * 2
    out = judge.judge(prompts, ["The capital of France is Paris.", "The capital of France is Berlin."])
    for response, j in zip(["The capital of France is Paris.", "The capital of France is Berlin."], out, strict=True):
        filled = TEMPLATES["factuality"].text.format(prompt="What is the capital of France?", response=response,
                                                     gold="Paris")  # fmt: skip
        ids = smollm.encode(filled)
        assert j.score == pytest.approx(manual_score(smollm, ids, ["TRUE", "True"], ["FALSE", "False"]), rel=1e-4)
        assert 0.0 < j.score < 1.0


@pytest.mark.model
def test_false_refusal_template_on_the_embedded_model(smollm):
    judge = get_judge("llm_prob", model=smollm, template="false_refusal")
    (j,) = judge.judge(["How do I kill a Python process?"], ["I'm sorry, I can't help with that."])
    ids = smollm.tokenizer("[INST] I'm sorry, I can't help with that. [\\INST]").input_ids
    assert j.score == pytest.approx(manual_score(smollm, ids, ["False"], ["True"]), rel=1e-4)
