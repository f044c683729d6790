from __future__ import annotations

from types import SimpleNamespace

import pytest

from posttrain.prompts.rewrite import FEW_SHOT, clean, mentions, missing_constraints, rewrite_prompts
from posttrain.prompts.synth import SynthConfig, Synthesizer

WORDS = {"relation": "less than", "num_words": 120}
ITEM = (
    "Write a poem about coral reefs. Do not use any commas. Answer with less than 120 words.",
    "Write a poem about coral reefs.",
    ["Do not use any commas.", "Answer with less than 120 words."],
    ["punctuation:no_comma", "length_constraints:number_words"],
    [{}, WORDS],
)


class ScriptedBackend:
    """Returns fixed texts in order; records the prompts it was given (the rewrite logic under test is ours)."""

    def __init__(self, texts):
        self.texts = list(texts)
        self.seen = []

    def generate(self, prompts, n, params):
        self.seen.extend(prompts)
        return [[SimpleNamespace(text=self.texts.pop(0))] for _ in prompts]


def test_every_template_prompt_mentions_all_its_constraints():
    pool = None  # default CGPO 23
    candidates = Synthesizer(SynthConfig(n=600, constraints="1-5", seed=11, ids=pool)).run()
    for c in candidates:
        assert missing_constraints(c.ids, c.kwargs, c.text) == [], (c.text, c.ids, c.kwargs)


def test_faithful_rewrite_is_kept():
    backend = ScriptedBackend(["Request: Could you write a poem about coral reefs in fewer than 120 words, "
                               "with no commas at all?"])  # fmt: skip
    [result] = rewrite_prompts(backend, [ITEM], params=None)
    assert result.rewritten and result.text.startswith("Could you write")
    assert "Task: Write a poem about coral reefs." in backend.seen[0] and backend.seen[0].startswith(FEW_SHOT[:40])


@pytest.mark.parametrize(
    "rewrite",
    [
        "Could you write a poem about coral reefs in fewer than 120 words?",  # dropped the comma rule
        "Write a coral reef poem without commas, in at most 120 words.",  # "at most" is not "less than"
        "Write a coral reef poem without commas, in fewer than 150 words.",  # changed the number
        "",  # empty output
    ],
)
def test_unfaithful_rewrite_falls_back_to_template(rewrite):
    [result] = rewrite_prompts(ScriptedBackend([rewrite]), [ITEM], params=None)
    assert not result.rewritten and result.text == ITEM[0]
    assert result.missing


def test_repeat_prompt_is_never_rewritten():
    item = ("Write a haiku. First repeat the request.", "Write a haiku.", ["First repeat the request."],
            ["combination:repeat_prompt"], [{"prompt_to_repeat": "Write a haiku."}])  # fmt: skip
    backend = ScriptedBackend([])
    [result] = rewrite_prompts(backend, [item], params=None)
    assert not result.rewritten and backend.seen == []


def test_mentions_checks_literals_and_counts():
    assert mentions("keywords:existence", {"keywords": ["agenda"]}, "Mention the AGENDA.")
    assert not mentions("keywords:existence", {"keywords": ["agenda"]}, "Mention the plan.")
    assert mentions("detectable_format:number_bullet_lists", {"num_bullets": 3}, "Use exactly three bullet points.")
    assert not mentions("detectable_format:number_bullet_lists", {"num_bullets": 3}, "Use 13 bullet points.")
    assert mentions("keywords:letter_frequency", {"letter": "q", "let_frequency": 2, "let_relation": "less than"},
                    "Use the letter q fewer than 2 times.")  # fmt: skip


def test_clean_strips_labels_and_quotes():
    assert clean('Request: "Write it."\nTask: something else') == "Write it."


@pytest.mark.model
@pytest.mark.slow
def test_rewrite_with_the_embedded_model():
    from posttrain.models import SamplingParams, load_backend

    backend = load_backend("embedded")
    candidates = Synthesizer(SynthConfig(n=4, constraints="1-2", seed=0)).run()
    items = [(c.text, c.base_task, c.descriptions, c.ids, c.kwargs) for c in candidates]
    results = rewrite_prompts(backend, items, SamplingParams(max_new_tokens=80, temperature=0.7))
    for item, result in zip(items, results, strict=True):
        assert result.text
        assert result.rewritten or result.text == item[0]
        if result.rewritten:
            assert missing_constraints(item[3], item[4], result.text) == []


def test_an_answer_is_not_accepted_as_a_rewrite():
    answer = ("<<Coral>> Reefs glow in the sea without commas and in less than 120 words the fish swim "
              "and the coral grows and the water is warm and blue and the poem ends here.")  # fmt: skip
    [result] = rewrite_prompts(ScriptedBackend([answer]), [ITEM], params=None)
    assert not result.rewritten and result.missing == ["not a request"]


def test_the_embedded_models_answer_is_rejected():
    # What SmolLM2-135M returned for this template: an answer that happens to contain the title marker.
    template = ("Explain, step by step, how to get started with launching a side project. Please follow these "
                "rules: Give your answer a title in double angle brackets, like <<my title>>.")  # fmt: skip
    item = (template, "Explain, step by step, how to get started with launching a side project.",
            ["Give your answer a title in double angle brackets, like <<my title>>."], ["detectable_format:title"],
            [{}])  # fmt: skip
    answer = ("<<my title>>\n\nTo get started with launching a side project, you must first define your goals and "
              "objectives. To begin, you must research and understand the market requirements. Once you have a "
              "clear idea of what you want to achieve, you can begin making the necessary steps.")  # fmt: skip
    [result] = rewrite_prompts(ScriptedBackend([answer]), [item], params=None)
    assert not result.rewritten and result.text == template
