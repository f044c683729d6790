"""Packed-row attention: the same outputs and gradients as transformers' block-diagonal mask and as the 4-D masks
of shared-prompt rows, and transformers' own SDPA wherever a row is not a plain packed one (padding masks, 4-D
masks, caches, decoding)."""

from __future__ import annotations

import copy

import torch

from posttrain.train.data import Sequence, collate, packed_rows
from posttrain.train.logprobs import token_logps
from posttrain.train.packed_attention import (
    NAME,
    packed_sdpa_mask,
    row_layout,
    sequence_spans,
    use_packed_attention,
)
from tests.train.conftest import tiny_llama

VOCAB = 97
LENGTHS = (9, 17, 4, 12)


def _packed_row(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (1, sum(LENGTHS)), generator=torch.Generator().manual_seed(seed))
    positions = torch.cat([torch.arange(n) for n in LENGTHS]).unsqueeze(0)
    return ids, positions


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    masked = tiny_llama(VOCAB)
    masked.set_attn_implementation("sdpa")
    packed = copy.deepcopy(masked)
    use_packed_attention(packed)
    return masked, packed


def test_sequence_spans_start_wherever_a_position_does_not_follow_the_previous_one():
    assert sequence_spans(torch.tensor([0, 1, 2, 0, 1, 0, 0, 1])) == [(0, 3), (3, 5), (5, 6), (6, 8)]
    assert sequence_spans(torch.tensor([5, 6, 7])) == [(0, 3)]  # one sequence, wherever it starts
    assert sequence_spans(torch.tensor([0, 1, 7, 8])) == [(0, 2), (2, 4)]  # a jump also starts one (transformers)


def test_a_restart_within_the_last_sequence_from_zero_is_a_branch_of_its_first_tokens():
    # prompt of 2 + response of 2, a second response at 2; a new group of 2, a branch at 1; a jump is its own
    assert row_layout(torch.tensor([0, 1, 2, 3, 2, 3, 0, 1, 1, 9, 10])) == [
        (0, 4, 0), (4, 6, 2), (6, 8, 0), (8, 9, 1), (9, 11, 0)
    ]  # fmt: skip
    assert row_layout(torch.tensor([0, 1, 0, 1, 2])) == [(0, 2, 0), (2, 5, 0)]  # sequences of their own
    assert row_layout(torch.tensor([3, 4, 2, 3])) == [(0, 2, 0), (2, 4, 0)]  # no sequence from 0 to branch from


def _shared_prompt_groups(seed: int) -> list[list[Sequence]]:
    rng = torch.Generator().manual_seed(seed)
    groups = []
    for prompt_len, tails in ((6, (5, 8)), (3, (4, 4, 2, 7)), (9, (1, 6))):
        prompt = torch.randint(0, VOCAB, (prompt_len,), generator=rng).tolist()
        groups.append([
            Sequence(ids=prompt + torch.randint(0, VOCAB, (n,), generator=rng).tolist(),
                     targets=[False] * prompt_len + [True] * n)
            for n in tails
        ])  # fmt: skip
    return groups


def test_shared_prompt_groups_in_one_unmasked_row_equal_their_masked_rows_and_each_sequence_alone():
    masked, packed = _pair()
    groups = _shared_prompt_groups(seed=8)
    one_row, rows = packed_rows(groups, pad=0, one_row=True), packed_rows(groups, pad=0)
    assert one_row.attention_mask is None and one_row.input_ids.shape[0] == 1
    width, row_length = rows.input_ids.shape[1], {}
    for end in rows.seq_end.tolist():  # a row ends with its group's last sequence
        row_length[end // width] = max(row_length.get(end // width, 0), end % width + 1)
    assert one_row.input_ids.shape[1] == sum(row_length.values())  # no padding
    alone = collate([s for g in groups for s in g], pad_id=0, packing=False)
    with torch.no_grad():
        expected = token_logps(masked, alone)
        torch.testing.assert_close(token_logps(masked, rows), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(token_logps(packed, one_row), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(one_row.target_seq, rows.target_seq) and torch.equal(one_row.target_ids, rows.target_ids)


def test_gradients_of_an_unmasked_shared_prompt_row_equal_the_masked_rows():
    masked, packed = _pair()
    masked.train()
    packed.train()
    groups = _shared_prompt_groups(seed=9)
    grads = []
    for model, batch in ((masked, packed_rows(groups, pad=0)), (packed, packed_rows(groups, pad=0, one_row=True))):
        token_logps(model, batch).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_a_packed_row_gives_each_sequence_what_it_gets_alone():
    masked, packed = _pair()
    assert packed.config._attn_implementation == NAME
    ids, positions = _packed_row()
    with torch.no_grad():
        alone, start = [], 0
        for n in LENGTHS:
            alone.append(masked(input_ids=ids[:, start : start + n], use_cache=False).logits)
            start += n
        alone_logits = torch.cat(alone, dim=1)
        packed_logits = packed(input_ids=ids, position_ids=positions, use_cache=False).logits
        masked_logits = masked(input_ids=ids, position_ids=positions, use_cache=False).logits
    torch.testing.assert_close(packed_logits, alone_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked_logits, alone_logits, rtol=1e-5, atol=1e-5)


def test_gradients_equal_the_block_diagonal_masks():
    masked, packed = _pair()
    masked.train()
    packed.train()
    ids, positions = _packed_row(seed=4)
    grads = []
    for model in (masked, packed):
        loss = model(input_ids=ids, position_ids=positions, labels=ids, use_cache=False).loss
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_padded_batches_and_shared_prefix_rows_keep_transformers_masks():
    masked, packed = _pair()
    rng = torch.Generator().manual_seed(5)
    prompt = torch.randint(0, VOCAB, (6,), generator=rng).tolist()
    seqs = [
        Sequence(ids=prompt + torch.randint(0, VOCAB, (n,), generator=rng).tolist(), targets=[False] * 6 + [True] * n)
        for n in (5, 8, 3)
    ]
    with torch.no_grad():
        for batch in (collate(seqs, pad_id=0, packing=False), packed_rows([seqs[:2], seqs[2:]], pad=0)):
            assert batch.attention_mask is not None  # a 2-D padding mask, a 4-D block mask
            torch.testing.assert_close(token_logps(packed, batch), token_logps(masked, batch), rtol=0, atol=0)


def test_generation_is_unchanged():
    masked, packed = _pair()
    prompt = torch.randint(0, VOCAB, (2, 7), generator=torch.Generator().manual_seed(6))
    attention = torch.ones_like(prompt)
    attention[1, :2] = 0  # left padding in the second row
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        assert torch.equal(
            packed.generate(prompt, attention_mask=attention, **kwargs),
            masked.generate(prompt, attention_mask=attention, **kwargs),
        )
        assert torch.equal(packed.generate(prompt[:1], **kwargs), masked.generate(prompt[:1], **kwargs))


def test_the_mask_is_skipped_only_for_a_plain_causal_row():
    config = tiny_llama(VOCAB).config
    common = {"batch_size": 1, "q_length": 8, "kv_length": 8, "config": config, "device": torch.device("cpu")}
    assert packed_sdpa_mask(**common, attention_mask=None) is None
    padding = torch.ones(1, 8, dtype=torch.bool)
    padding[0, 0] = False
    assert packed_sdpa_mask(**common, attention_mask=padding) is not None
    assert packed_sdpa_mask(**{**common, "kv_length": 12, "q_offset": 4}, attention_mask=None) is not None
