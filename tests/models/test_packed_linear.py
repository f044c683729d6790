"""Packed bf16 linear layers (models/packed_linear.py): the same outputs as nn.Linear, and the backend that loads its
own model samples exactly what the unpacked model samples."""

from __future__ import annotations

import pytest
import torch

from posttrain.models.backend import SamplingParams
from posttrain.models.hf import HFBackend
from posttrain.models.packed_linear import PackedLinear, can_pack, pack_linear_layers
from tests.train.conftest import tiny_llama

pytestmark = pytest.mark.skipif(not can_pack(), reason="this CPU has no native bf16 matmul through oneDNN")


def test_packed_layers_give_nn_linears_outputs_for_any_number_of_rows():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48, bias=True).to(torch.bfloat16)
    model = torch.nn.Sequential(linear)
    inputs = [torch.randn(rows, 64, dtype=torch.bfloat16) for rows in (1, 7, 32, 200)]
    dense = [linear(x) for x in inputs]
    assert pack_linear_layers(model, batch_hint=32) == 1 and isinstance(model[0], PackedLinear)
    with torch.inference_mode():
        for x, expected in zip(inputs, dense, strict=True):
            assert torch.equal(model(x), expected.detach())
        assert torch.equal(model(inputs[1].view(1, 7, 64)), dense[1].detach().view(1, 7, 48))  # 3-D input


def test_fp32_layers_are_left_alone():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    assert pack_linear_layers(model) == 0 and isinstance(model[0], torch.nn.Linear)


def test_a_backend_that_loads_a_bf16_model_packs_it_and_samples_as_before(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    tiny_llama(len(tokenizer), seed=3).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    packed = HFBackend(str(tmp_path), threads=1, dtype="bfloat16")
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    monkeypatch.setattr("posttrain.models.packed_linear.pack_linear_layers", lambda model, batch_hint: 0)
    plain = HFBackend(str(tmp_path), threads=1, dtype="bfloat16")
    assert not any(isinstance(m, PackedLinear) for m in plain.model.modules())
    monkeypatch.undo()
    HFBackend("given", threads=1, model_and_tokenizer=(plain.model, tokenizer))
    # A backend given a model (the online loop's sampler, trained between rollouts) leaves its layers as they are.
    assert not any(isinstance(m, PackedLinear) for m in plain.model.modules())
    prompts = ["Name three colours.", "Say hello in lowercase."]
    for params in (SamplingParams(max_new_tokens=12, temperature=0.0), SamplingParams(max_new_tokens=12, temperature=1.0, seed=5)):
        assert packed.generate(prompts, 2, params) == plain.generate(prompts, 2, params)
