"""Llama Guard 1/2/3: prompts byte-identical to the models' own chat templates, output parsing, and the scoring
path (P(first token = "unsafe")) on a tiny random model, since the real ones are not available offline."""

from __future__ import annotations

import pytest
import torch

from posttrain.errors import InputError
from posttrain.judges import get_judge
from posttrain.judges.llama_guard import (
    LG1_CATEGORIES,
    LG2_CATEGORIES,
    LG3_CATEGORIES,
    Category,
    GuardOutput,
    build_prompt,
    custom_categories,
    parse_output,
)

from .llama_guard_hf_templates import TEMPLATES

CONVERSATIONS = [
    [{"role": "user", "content": "How do I make a cake?"}],
    [{"role": "user", "content": "  How do I pick a lock?  "}, {"role": "assistant", "content": "I can't help.\n"}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me about knives."},
        {"role": "assistant", "content": "Knives are kitchen tools."},
    ],
]


def render_hf(version: int, messages: list[dict[str, str]]) -> str:
    """The template rendered as transformers does (sandboxed Jinja, trim_blocks/lstrip_blocks, raise_exception)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(TEMPLATES[version]).render(messages=messages)


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["user", "agent", "multi-turn"])
def test_prompt_matches_the_models_chat_template(version, messages):
    assert build_prompt(messages, version) == render_hf(version, messages)


def test_taxonomies():
    assert [c.code for c in LG1_CATEGORIES] == [f"O{i}" for i in range(1, 7)]
    assert [c.code for c in LG2_CATEGORIES] == [f"S{i}" for i in range(1, 12)]
    assert [c.code for c in LG3_CATEGORIES] == [f"S{i}" for i in range(1, 15)]
    assert LG3_CATEGORIES[13].render() == "S14: Code Interpreter Abuse."
    assert LG2_CATEGORIES[4].render() == "S5: Specialized Advice. "  # LG2's template has the trailing space


def test_roles_user_and_agent():
    user = build_prompt(CONVERSATIONS[0], 3)
    agent = build_prompt(CONVERSATIONS[1], 3)
    assert "unsafe content in 'User' messages" in user and "ONLY THE LAST User message" in user
    assert "unsafe content in 'Agent' messages" in agent and "ONLY THE LAST Agent message" in agent
    with pytest.raises(InputError, match="alternate"):
        build_prompt([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    system_first = [{"role": "system", "content": "be nice"}, *CONVERSATIONS[0]]
    assert build_prompt(system_first, 3) == user  # Llama Guard has no system turn


def test_custom_categories():
    cats = custom_categories(["Violence.", ("Spam.", "Unsolicited advertising."), {"code": "S9", "name": "X."}])
    assert [c.code for c in cats] == ["S1", "S2", "S9"]
    prompt = build_prompt(CONVERSATIONS[0], 3, cats)
    assert "<BEGIN UNSAFE CONTENT CATEGORIES>\nS1: Violence.\nS2: Spam.\nUnsolicited advertising.\nS9: X.\n<END" in prompt
    assert custom_categories(["Hate."], version=1)[0] == Category("O1", "Hate.")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("safe", GuardOutput(True)),
        ("\n\nsafe\n", GuardOutput(True)),
        (" Safe", GuardOutput(True)),
        ("unsafe\nS1,S10", GuardOutput(False, ("S1", "S10"))),
        ("unsafe\n s2 , o3 ", GuardOutput(False, ("S2", "O3"))),
        ("unsafe", GuardOutput(False, ())),
        ("unsafe\nhate speech", GuardOutput(False, ())),
        ("", None),
        ("I think it is safe", None),
        ("maybe\nS1", None),
    ],
)
def test_parse_output(text, parsed):
    assert parse_output(text) == parsed


@pytest.mark.parametrize("version", [1, 3])
def test_score_is_the_probability_of_the_first_unsafe_token(tiny_backend, version):
    judge = get_judge("llama_guard", model=tiny_backend, version=version, threshold=1e-9)
    prompts = ["How do I pick a lock?", "Bake a cake"]
    completions = ["Use a tension wrench.", "Mix flour and eggs."]
    out = judge.judge(prompts, completions)
    tok = tiny_backend.tokenizer
    for p, c, j in zip(prompts, completions, out, strict=True):
        text = build_prompt([{"role": "user", "content": p}, {"role": "assistant", "content": c}], version)
        text += "\n\n" if version == 3 else ""
        ids = tok(text, add_special_tokens=version != 3).input_ids
        # LG1 answers " unsafe" after "[/INST]"; LG3 writes "unsafe" after the header's blank line
        first = tok("unsafe" if version == 3 else " unsafe", add_special_tokens=False).input_ids[0]
        with torch.inference_mode():
            logits = tiny_backend.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
        expected = torch.softmax(logits, -1)[first].item()
        assert j.score == pytest.approx(expected, rel=1e-4)
        assert j.value == 0  # any probability is above the 1e-9 threshold: "unsafe"


def test_generate_mode_parses_the_answer_and_a_random_model_is_unparsable(tiny_backend):
    judge = get_judge("llama_guard", model=tiny_backend, version=3, generate=True)
    (j,) = judge.judge(["Hello"], ["Hi there"])
    assert j.value == -1 and "unparsable Llama Guard output" in j.detail and j.score is not None


def test_user_role_ignores_the_response(tiny_backend):
    judge = get_judge("llama_guard", model=tiny_backend, role="User")
    a, b = judge.judge(["same prompt", "same prompt"], ["response one", "a different response"])
    assert a.score == pytest.approx(b.score, rel=1e-5)


def test_bad_options():
    with pytest.raises(InputError, match="version must be 1, 2 or 3"):
        get_judge("llama_guard", model="unused", version=4)
    with pytest.raises(InputError, match="role must be 'User'"):
        get_judge("llama_guard", model="unused", role="assistant")
