"""The local transformers backend on the real embedded model: parity with `model.generate`, seeds, stops, scoring."""

from __future__ import annotations

import pytest

from posttrain.errors import InputError
from posttrain.models import SamplingParams, load_backend
from posttrain.models.hf import HFBackend

pytestmark = pytest.mark.model

PROMPTS = [
    "Write a haiku about rain.",
    "What is the capital of France? Answer in one sentence.",
    "List three fruits, one per line, and nothing else.",
]


@pytest.fixture(scope="module")
def backend() -> HFBackend:
    b = load_backend("embedded")
    assert isinstance(b, HFBackend)
    return b


def _plain_generate_greedy(backend: HFBackend, prompt: str, max_new_tokens: int) -> str:
    import torch

    ids = torch.tensor([backend.encode(prompt)])
    with torch.inference_mode():
        out = backend.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False
        )
    return str(backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_greedy_matches_plain_generate_for_every_row_of_a_padded_batch(backend: HFBackend) -> None:
    rows = backend.generate(PROMPTS, 1, SamplingParams(max_new_tokens=24, temperature=0.0))
    for prompt, (completion,) in zip(PROMPTS, rows, strict=True):
        assert completion.text == _plain_generate_greedy(backend, prompt, 24)
        assert completion.prompt_tokens == len(backend.encode(prompt))
        assert completion.finish_reason in ("stop", "length")


def test_a_sample_does_not_depend_on_its_batch_or_order(backend: HFBackend) -> None:
    params = SamplingParams(max_new_tokens=16, temperature=0.8, top_p=0.95, seed=7)
    together = backend.generate(PROMPTS, 2, params)
    alone = backend.generate([PROMPTS[2]], 2, params)
    reversed_order = backend.generate(PROMPTS[::-1], 2, params)
    assert [c.text for c in together[2]] == [c.text for c in alone[0]]
    assert [c.text for c in together[0]] == [c.text for c in reversed_order[2]]
    assert together[2][0].text != together[2][1].text  # the n samples of a prompt differ
    other_seed = backend.generate([PROMPTS[2]], 2, SamplingParams(max_new_tokens=16, temperature=0.8, seed=8))
    assert [c.text for c in other_seed[0]] != [c.text for c in alone[0]]


def test_a_batch_computes_its_shared_prefix_once_and_each_distinct_prompt_once(backend: HFBackend) -> None:
    seen: list[tuple[int, ...]] = []
    forward = backend.model.forward

    def recording(*args, **kwargs):
        seen.append(tuple(kwargs["input_ids"].shape))
        return forward(*args, **kwargs)

    encoded = [backend.encode(p) for p in PROMPTS]
    shared = next(i for i in range(min(map(len, encoded))) if len({e[i] for e in encoded}) > 1)
    assert shared > 10  # the chat template's system turn
    backend.model.forward = recording
    try:
        rows = backend.generate(PROMPTS, 3, SamplingParams(max_new_tokens=6, temperature=0.0))
    finally:
        del backend.model.forward
    longest_rest = max(len(e) for e in encoded) - shared
    assert seen[:2] == [(1, shared), (len(PROMPTS), longest_rest)]  # then the 9 rows decode together
    assert all(shape[1] == 1 for shape in seen[2:]) and seen[2][0] == 3 * len(PROMPTS)
    for prompt, samples in zip(PROMPTS, rows, strict=True):
        assert {c.text for c in samples} == {_plain_generate_greedy(backend, prompt, 6)}


def test_common_prefix_leaves_every_prompt_a_token_of_its_own() -> None:
    from posttrain.models.hf import _common_prefix

    assert _common_prefix([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert _common_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert _common_prefix([[7, 2], [1, 2]]) == 0


def test_length_and_stop_string_finish_reasons(backend: HFBackend) -> None:
    (long,), (stopped,) = backend.generate(
        ["Write a long story about a dragon.", "Count from 1 to 20, separated by commas."],
        1,
        SamplingParams(max_new_tokens=20, temperature=0.0, stop=("4",)),
    )
    assert long.finish_reason == "length" and long.completion_tokens == 20
    assert stopped.finish_reason == "stop" and "4" not in stopped.text
    assert stopped.text.strip().startswith("1")


def test_a_final_assistant_message_is_continued(backend: HFBackend) -> None:
    prefix = "Here are three colors: red,"
    conversation = [
        {"role": "user", "content": "Name three colors."},
        {"role": "assistant", "content": prefix},
    ]
    encoded = backend.tokenizer.decode(backend.encode(conversation))
    assert encoded.rstrip().endswith(prefix)  # no end-of-turn token after the prefix
    (c,) = backend.generate([conversation], 1, SamplingParams(max_new_tokens=8, temperature=0.0))[0:1][0]
    assert c.text and not c.text.startswith("Here are")


def test_logprobs_match_the_scores_of_plain_generate(backend: HFBackend) -> None:
    import torch

    prompt = PROMPTS[1]
    ids = torch.tensor([backend.encode(prompt)])
    with torch.inference_mode():
        out = backend.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
            output_scores=True, return_dict_in_generate=True,
        )  # fmt: skip
    expected = backend.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
    text = backend.tokenizer.decode(out.sequences[0, ids.shape[1] :])
    got = backend.logprobs(prompt, text)
    assert len(got) == len(expected)
    assert got == pytest.approx([float(x) for x in expected], abs=1e-3)


def test_a_prompt_longer_than_the_context_is_a_clear_error(backend: HFBackend) -> None:
    with pytest.raises(InputError, match="exceeds the model's context"):
        backend.generate(["word " * 9000], 1, SamplingParams(max_new_tokens=8))


def test_bad_specs_and_params_are_clear_errors() -> None:
    with pytest.raises(InputError, match="unknown model 'no-such-model'"):
        load_backend("no-such-model")
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_dtype_names_resolve_and_bf16_weights_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from posttrain.models import hf

    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: True)
    assert hf.resolve_dtype("auto") is torch.bfloat16
    monkeypatch.setattr(hf, "cpu_has_native_bf16", lambda: False)
    assert hf.resolve_dtype("auto") is torch.float32
    assert hf.resolve_dtype("bfloat16") is torch.bfloat16 and hf.resolve_dtype(None) is None
    with pytest.raises(InputError, match="unknown dtype 'fp8'"):
        hf.resolve_dtype("fp8")
    bf16 = load_backend("embedded", dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype is torch.bfloat16
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    first, again = (bf16.generate(PROMPTS[:1], 1, params)[0][0] for _ in range(2))
    assert first.text.strip() and first.text == again.text and first.completion_tokens > 0


def test_the_sampler_draws_from_the_softmax_and_respects_top_p():
    import torch

    from posttrain.models.hf import _choose, _generator

    logits = torch.log(torch.tensor([[0.5, 0.0, 0.3, 0.2]])).repeat(4000, 1)
    picks = _choose(logits, SamplingParams(max_new_tokens=1, temperature=1.0), [_generator(i) for i in range(4000)])
    freq = torch.bincount(picks, minlength=4) / 4000
    assert torch.allclose(freq, torch.tensor([0.5, 0.0, 0.3, 0.2]), atol=0.03) and freq[1] == 0
    nucleus = SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.6)
    freq = torch.bincount(_choose(logits, nucleus, [_generator(i) for i in range(4000)]), minlength=4) / 4000
    assert torch.allclose(freq, torch.tensor([0.625, 0.0, 0.375, 0.0]), atol=0.03)
    again = _choose(logits[:3], nucleus, [_generator(i) for i in range(3)])
    assert again.tolist() == _choose(logits[:3], nucleus, [_generator(i) for i in range(3)]).tolist()
