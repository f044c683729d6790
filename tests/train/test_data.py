"""Tokenisation, target masks (Llama 3 format-token masking), truncation policy and batching."""

from __future__ import annotations

import pytest
import torch

from posttrain.errors import InputError
from posttrain.train.data import check_tokenizer, collate, plan_batches, render

CONTENT = "the answer is forty two."


def targets_text(tokenizer, seq) -> str:
    return tokenizer.decode([i for i, t in zip(seq.ids, seq.targets, strict=True) if t])


def test_format_tokens_masked_only_content_is_target(tokenizer):
    seq = render(tokenizer, "What is six times seven?", CONTENT, 512, mask_format_tokens=True)
    assert targets_text(tokenizer, seq) == CONTENT
    full = render(tokenizer, "What is six times seven?", CONTENT, 512, mask_format_tokens=False)
    assert full.ids == seq.ids
    assert targets_text(tokenizer, full) == CONTENT + "<|im_end|>\n"  # end-of-turn kept for SFT


def test_prompt_tokens_are_never_targets(tokenizer):
    seq = render(tokenizer, "What is six times seven?", CONTENT, 512, mask_format_tokens=False)
    prompt_len = len(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": "What is six times seven?"}], add_generation_prompt=True, tokenize=False
        )
    )
    first_target = seq.targets.index(True)
    prefix = tokenizer.decode(seq.ids[:first_target])
    assert len(prefix) == prompt_len and not any(seq.targets[:first_target])


def test_conversational_messages_render_like_strings(tokenizer):
    a = render(tokenizer, "Hi there", CONTENT, 512, True)
    b = render(
        tokenizer,
        [{"role": "user", "content": "Hi there"}],
        [{"role": "assistant", "content": CONTENT}],
        512,
        True,
    )
    assert a == b


def test_response_cut_from_the_right_prompt_kept(tokenizer):
    full = render(tokenizer, "Hi", CONTENT * 20, 4096, True)
    cut = render(tokenizer, "Hi", CONTENT * 20, 60, True)
    assert cut.ids == full.ids[:60] and cut.targets == full.targets[:60] and cut.n_targets > 0


def test_prompt_longer_than_max_length_gives_none(tokenizer):
    assert render(tokenizer, "word " * 300, CONTENT, 64, True) is None


def test_empty_response_is_an_error(tokenizer):
    with pytest.raises(InputError, match="response is empty"):
        render(tokenizer, "Hi", "   ", 512, True)


def test_mismatched_tokenizer_is_an_error(tokenizer):
    from tests.train.conftest import tiny_llama

    with pytest.raises(InputError, match="mismatched tokenizer"):
        check_tokenizer(tiny_llama(vocab_size=1000), tokenizer)


def test_plan_batches_deterministic_bucketed_and_complete():
    lengths = [50, 10, 30, 20, 40, 60, 70, 5]
    a = plan_batches(lengths, 2, seed=3, epoch=1, shuffle=True, bucket_by_length=True)
    assert a == plan_batches(lengths, 2, seed=3, epoch=1, shuffle=True, bucket_by_length=True)
    assert sorted(i for b in a for i in b) == list(range(8))
    spreads = [abs(lengths[b[0]] - lengths[b[1]]) for b in a]
    assert max(spreads) <= 20  # neighbours in length share a batch
    assert a != plan_batches(lengths, 2, seed=3, epoch=2, shuffle=True, bucket_by_length=True)
    assert plan_batches(lengths, 3, 0, 0, shuffle=False, bucket_by_length=False) == [[0, 1, 2], [3, 4, 5], [6, 7]]


def test_collate_packed_and_padded_locate_the_same_targets(tokenizer):
    seqs = [render(tokenizer, "Hi", CONTENT, 512, True), render(tokenizer, "Hello", "ok then", 512, True)]
    packed, padded = collate(seqs, 0, packing=True), collate(seqs, 0, packing=False)
    assert packed.input_ids.shape[0] == 1 and padded.input_ids.shape[0] == 2
    for batch in (packed, padded):
        flat = batch.input_ids.reshape(-1)
        assert torch.equal(flat[batch.pred_index + 1], batch.target_ids)  # next token is the target
        assert batch.lengths().tolist() == [s.n_targets for s in seqs]
    assert packed.n_tokens == padded.n_tokens == sum(len(s.ids) for s in seqs)


def test_end_of_turn_target_adds_only_the_end_of_turn_token(tokenizer):
    # A chosen answer whose rejected twin was cut off: stopping is the difference, so <|im_end|> becomes a target.
    seq = render(tokenizer, "What is six times seven?", CONTENT, 512, mask_format_tokens=True, end_of_turn_target=True)
    assert targets_text(tokenizer, seq) == CONTENT + "<|im_end|>"
    plain = render(tokenizer, "What is six times seven?", CONTENT, 512, mask_format_tokens=True)
    assert plain.ids == seq.ids
