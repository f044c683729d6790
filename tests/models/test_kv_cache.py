"""The decode loop's in-place KV cache (models/kv_cache.py) against transformers' concatenating one."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from posttrain.models import kv_cache
from posttrain.models.kv_cache import GrowingLayer, growing_cache


def test_a_growing_layer_holds_what_concatenation_holds_through_growth_and_dropped_rows(monkeypatch):
    monkeypatch.setattr(kv_cache, "CHUNK", 3)  # grow every few steps
    torch.manual_seed(0)
    ours, theirs = GrowingLayer(room=50), DynamicLayer()
    steps = [torch.randn(4, 2, 5, 8)] + [torch.randn(4, 2, 1, 8) for _ in range(9)]  # a prompt of 5, then tokens
    for step, keys in enumerate(steps):
        if step == 6:  # two rows finish
            index = torch.tensor([0, 2])
            ours.batch_select_indices(index)
            theirs.batch_select_indices(index)
        if step >= 6:
            keys = keys[:2]
        k1, v1 = ours.update(keys, -keys)
        k2, v2 = theirs.update(keys, -keys)
        assert torch.equal(k1, k2) and torch.equal(v1, v2)
        assert ours.get_seq_length() == theirs.get_seq_length() == 5 + step
    assert ours.key_buffer is not None and ours.key_buffer.shape[-2] < 5 + 50  # grown by chunks, not room at once


def test_the_cache_builds_growing_layers():
    cache = growing_cache(room=7)
    cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), layer_idx=0)
    assert isinstance(cache.layers[0], GrowingLayer) and cache.get_seq_length() == 3
