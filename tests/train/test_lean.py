"""The lean RMSNorm / SwiGLU functions: same outputs and gradients as transformers' modules, fewer saved bytes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from posttrain.train.lean import make_lean
from posttrain.train.runtime import LoopConfig, prepare_for_training
from tests.train.conftest import tiny_llama

VOCAB = 97


def _batch(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 23), generator=torch.Generator().manual_seed(seed))


def _loss_and_grads(model: nn.Module, ids: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _saved_bytes(model: nn.Module, ids: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward pass, parameters excluded (each storage counted once)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)  # the loss and everything before it records what it keeps
    return sum(kept.values())


def test_every_norm_and_mlp_of_a_llama_is_swapped_and_the_gradients_match():
    original = tiny_llama(VOCAB).train()
    lean = copy.deepcopy(original)
    # 2 layers x (2 norms + 1 MLP) + the final norm
    assert make_lean(lean) == 7
    ids = _batch()
    with torch.no_grad():
        assert torch.equal(original(input_ids=ids).logits, lean(input_ids=ids).logits)  # the same forward ops
    loss_a, grads_a = _loss_and_grads(original, ids)
    loss_b, grads_b = _loss_and_grads(lean, ids)
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)


def test_lean_layers_keep_fewer_bytes_for_the_backward_pass():
    original = tiny_llama(VOCAB).train()
    lean = copy.deepcopy(original)
    make_lean(lean)
    ids = _batch()
    before, after = _saved_bytes(original, ids), _saved_bytes(lean, ids)
    # per token and layer the MLP keeps gate and up (not SiLU(gate) and the product), the norms one copy fewer
    assert after < 0.8 * before, (before, after)


def test_bf16_autocast_gradients_stay_close():
    original = tiny_llama(VOCAB).train()
    lean = copy.deepcopy(original)
    make_lean(lean)
    ids = _batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_a, grads_a = _loss_and_grads(original, ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_b, grads_b = _loss_and_grads(lean, ids)
    torch.testing.assert_close(loss_b, loss_a)
    for name in grads_a:
        assert grads_b[name].dtype == grads_a[name].dtype == torch.float32
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=0.05, atol=2e-3, msg=name)


def test_modules_the_lean_functions_do_not_reproduce_keep_their_forward():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaMLP, LlamaRMSNorm

    class OffsetRMSNorm(LlamaRMSNorm):  # Gemma-style scale: (1 + weight)
        def forward(self, hidden_states):
            variance = hidden_states.pow(2).mean(-1, keepdim=True)
            return (1 + self.weight) * hidden_states * torch.rsqrt(variance + self.variance_epsilon)

    gelu_mlp = LlamaMLP(LlamaConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, hidden_act="gelu"))
    model = nn.ModuleList([OffsetRMSNorm(16), gelu_mlp, LlamaRMSNorm(16)])
    assert make_lean(model) == 1  # only the real Llama norm
    assert "forward" not in vars(model[0]) and "forward" not in vars(model[1]) and "forward" in vars(model[2])


def test_a_lora_down_projection_keeps_the_mlp_forward():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(VOCAB), LoraConfig(r=4, target_modules=["down_proj", "q_proj"]))
    assert make_lean(model) == 5  # the norms; both MLPs keep theirs (the down projection is a LoRA layer)


@pytest.mark.parametrize("lean,checkpointing", [(True, False), (False, True), (True, True)])
def test_prepare_for_training_keeps_the_gradients(lean, checkpointing):
    reference = tiny_llama(VOCAB).train()
    model = copy.deepcopy(reference)
    prepare_for_training(model, LoopConfig(lean_activations=lean, gradient_checkpointing=checkpointing))
    assert model.training
    ids = _batch()
    _, grads_a = _loss_and_grads(reference, ids)
    _, grads_b = _loss_and_grads(model, ids)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6, msg=name)
