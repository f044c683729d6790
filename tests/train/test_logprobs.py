"""Chunked target log-probs equal the textbook log_softmax + gather, values and gradients, packed or padded."""

from __future__ import annotations

import pytest
import torch

from posttrain.train.data import collate, render
from posttrain.train.logprobs import sequence_logps, token_logps


def reference_token_logps(model, seqs):
    """One sequence at a time, full logits, log_softmax, gather: the obviously-correct version."""
    out = []
    for s in seqs:
        logits = model(input_ids=torch.tensor([s.ids]), use_cache=False).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        for i, is_target in enumerate(s.targets):
            if is_target:
                out.append(logp[i - 1, s.ids[i]])
    return torch.stack(out)


@pytest.fixture
def seqs(tokenizer):
    return [
        render(tokenizer, "Name a colour.", "blue, like the sky on a clear day.", 512, True),
        render(tokenizer, "Count to three.", "one two three", 512, True),
        render(tokenizer, "Say hi.", "hi!", 512, False),
    ]


@pytest.mark.parametrize("packing", [True, False])
@pytest.mark.parametrize("chunk", [4, 1024])
def test_matches_log_softmax_gather(tiny_model, seqs, packing, chunk):
    batch = collate(seqs, pad_id=0, packing=packing)
    ours = token_logps(tiny_model, batch, chunk_size=chunk)
    expected = reference_token_logps(tiny_model, seqs)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    sums = sequence_logps(ours, batch)
    assert sums.shape == (3,)
    torch.testing.assert_close(sums[1], expected[seqs[0].n_targets : seqs[0].n_targets + seqs[1].n_targets].sum())


def test_gradients_match_with_checkpointed_chunks(tiny_model, seqs):
    batch = collate(seqs, pad_id=0, packing=True)
    token_logps(tiny_model, batch, chunk_size=3).sum().backward()
    ours = {n: p.grad.clone() for n, p in tiny_model.named_parameters()}
    tiny_model.zero_grad()
    reference_token_logps(tiny_model, seqs).sum().backward()
    for name, p in tiny_model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, atol=1e-4, rtol=1e-4, msg=name)
