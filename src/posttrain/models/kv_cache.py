"""A KV cache for the HF backend's decode loop that writes each step's keys and values in place.

transformers' `DynamicLayer` appends a step by `torch.cat`, copying the whole cache of every layer at every step
(~9% of a bf16 decode step of the embedded model at batch 32 in a torch.profiler run taken beside another job).
`GrowingLayer` keeps the keys and values in buffers with room for the rest of the generation (`room` tokens past
the prompt), writes each step into the next slot and hands attention a view of the filled part: the same values in
the same order, so the logits are bit-identical (tests/models/test_hf.py compares the decode loop with plain `generate`). The buffers
grow by at most `CHUNK` tokens at a time, so a long `max_new_tokens` whose rows stop early does not reserve memory
for all of it; each growth copies the cache once, where `cat` copies it every step. Dropping finished rows
(`batch_select_indices`) indexes the buffers, as `DynamicLayer` indexes its tensors.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

CHUNK = 256  # tokens of room added at most per growth


class GrowingLayer(DynamicLayer):
    def __init__(self, room: int) -> None:
        super().__init__()
        self.room, self.length = room, 0
        self.key_buffer: torch.Tensor | None = None
        self.value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self.key_buffer is None or self.value_buffer is None or self.length + new > self.key_buffer.shape[-2]:
            self._grow(key_states, value_states, self.length + new + min(self.room, CHUNK))
        assert self.key_buffer is not None and self.value_buffer is not None
        self.key_buffer[..., self.length : self.length + new, :] = key_states
        self.value_buffer[..., self.length : self.length + new, :] = value_states
        self.length += new
        return self._expose()

    def _grow(self, key_states: torch.Tensor, value_states: torch.Tensor, capacity: int) -> None:
        keys = key_states.new_empty(*key_states.shape[:-2], capacity, key_states.shape[-1])
        values = value_states.new_empty(*value_states.shape[:-2], capacity, value_states.shape[-1])
        if self.length and self.key_buffer is not None and self.value_buffer is not None:
            keys[..., : self.length, :] = self.key_buffer[..., : self.length, :]
            values[..., : self.length, :] = self.value_buffer[..., : self.length, :]
        self.key_buffer, self.value_buffer = keys, values

    def _expose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention's view of the cache: the filled part of the buffers."""
        assert self.key_buffer is not None and self.value_buffer is not None
        keys, values = self.key_buffer[..., : self.length, :], self.value_buffer[..., : self.length, :]
        self.keys, self.values = keys, values
        return keys, values

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length and self.key_buffer is not None and self.value_buffer is not None:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self._expose()


def growing_cache(room: int) -> Any:
    """A `DynamicCache` whose layers are `GrowingLayer`s with `room` tokens to spare after the prompt; a plain one
    if this transformers builds its layers some other way."""
    cache = DynamicCache()
    if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer and not cache.layers:
        # transformers calls it with no arguments to make each layer, so a partial serves as the class
        cache.layer_class_to_replicate = functools.partial(GrowingLayer, room)  # type: ignore[assignment]
    return cache
