"""The vLLM backend's CPU-side logic, without vLLM: sampling parameters, prompt tokens, output mapping."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace
from typing import Any

import pytest

from posttrain.errors import InputError
from posttrain.models import SamplingParams, load_backend
from posttrain.models.backend import sample_seed
from posttrain.models.hf import HFBackend
from posttrain.models.vllm import (
    VLLMBackend,
    build_requests,
    build_sampling_kwargs,
    completion_logprobs,
    to_completion,
)

CONVERSATION = [
    {"role": "user", "content": "Name three colors."},
    {"role": "assistant", "content": "Here are three colors: red,"},
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def test_sampling_kwargs_carry_every_parameter_and_a_seed_per_sample() -> None:
    params = SamplingParams(max_new_tokens=32, temperature=0.7, top_p=0.9, top_k=40, stop=("\n\n",), seed=3)
    kwargs = build_sampling_kwargs(params, "hi", 1)
    assert kwargs == {
        "n": 1, "max_tokens": 32, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop": ["\n\n"],
        "seed": sample_seed(3, "hi", 1),
    }  # fmt: skip
    assert build_sampling_kwargs(params, "hi", 0)["seed"] != kwargs["seed"]
    assert build_sampling_kwargs(params, "hi", 1) == kwargs  # reproducible
    plain = build_sampling_kwargs(SamplingParams(seed=None), "hi", 0)
    assert plain["top_k"] == -1 and plain["stop"] is None and plain["seed"] is None


@pytest.mark.model
def test_prompt_tokens_equal_the_transformers_backend(tokenizer: Any) -> None:
    prompts = ["Write a haiku about rain.", CONVERSATION]
    params = SamplingParams(seed=0)
    requests = build_requests(tokenizer, prompts, 2, params)
    assert len(requests) == 4
    # HFBackend.encode needs only a tokenizer and a name: both backends must see identical prompt tokens
    local = SimpleNamespace(tokenizer=tokenizer, name="embedded")
    for k, (ids, kwargs) in enumerate(requests):
        prompt = prompts[k // 2]
        assert ids == HFBackend.encode(local, prompt)  # type: ignore[arg-type]
        assert kwargs["seed"] == sample_seed(0, prompt, k % 2)
    continued = tokenizer.decode(requests[2][0])
    assert continued.rstrip().endswith("red,")  # the assistant turn is left open


def test_outputs_map_to_completions() -> None:
    assert to_completion("hi", 5, 2, "length").finish_reason == "length"
    c = to_completion("hi", 5, 2, None)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ("hi", 5, 2, "stop")


def test_completion_logprobs_are_read_at_the_completion_positions() -> None:
    logprob = SimpleNamespace
    prompt_logprobs = [None, {7: logprob(logprob=-0.5)}, {8: logprob(logprob=-1.0)}, {9: -2.0}]
    assert completion_logprobs(prompt_logprobs, 2, [8, 9]) == [-1.0, -2.0]


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_without_vllm_the_error_says_how_to_install_it() -> None:
    with pytest.raises(InputError, match=r"pip install 'posttrain\[vllm\]'"):
        VLLMBackend("embedded")
    with pytest.raises(InputError, match="needs vLLM"):
        load_backend("vllm:some/model")
