"""Attention over packed rows without a materialised mask: each packed sequence attends within itself only.

A padding-free batch is one row holding several sequences whose position ids restart at each one
(`posttrain.train.data.collate`). transformers' SDPA path turns that row into a (T x T) block-diagonal causal mask and
runs attention over the whole row: for 8 sequences of ~400 tokens, 8x the attention the sequences need, through
SDPA's masked kernel. Here the row is cut where transformers' own packing test says a new sequence starts (a position
id that is not the previous one + 1) and SDPA runs causally on each piece: the same attention as the mask allows
(no token sees another sequence), at the cost of the pieces alone.

Only that case changes. Padded batches, explicit 4-D masks (DPO's shared-prefix rows), caches and decoding steps go
to transformers' SDPA as before (`posttrain_packed_sdpa` falls back to it), and so does any model whose masks are not
plain causal (sliding windows, extra mask functions). Training loops switch it on with `train.packed_attention`.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "posttrain_packed_sdpa"


def sequence_spans(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) of each sequence packed in a row of position ids: a new one starts wherever a position is not
    the previous position + 1 (as `transformers.masking_utils.find_packed_sequence_indices` decides)."""
    starts = torch.nonzero(position_ids[1:] != position_ids[:-1] + 1).flatten().add(1).tolist()
    bounds = [0, *starts, int(position_ids.shape[0])]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def packed_sdpa_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention interface: (batch, heads, T, dim) in, (batch, T, heads, dim) out."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    packed = (
        attention_mask is None
        and position_ids is not None
        and query.shape[0] == 1
        and query.shape[2] == key.shape[2]  # a whole row, no cached keys
        and getattr(module, "is_causal", True)
    )
    spans = sequence_spans(position_ids.reshape(-1)) if packed else []  # type: ignore[union-attr]
    if len(spans) <= 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    # `split`, not slicing: its backward is one concatenation of the pieces' gradients, where each slice's backward
    # would write its piece into a zero tensor the size of the whole row.
    sizes = [b - a for a, b in spans]
    pieces = [
        sdpa_attention_forward(module, q, k, v, None, **kwargs)[0]
        for q, k, v in zip(query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2), strict=True)
    ]
    return torch.cat(pieces, dim=1), None


def packed_sdpa_mask(**kwargs: Any) -> torch.Tensor | None:
    """transformers' mask interface: no mask where `packed_sdpa_attention` cuts the row itself (no padding mask, a
    whole row, plain causal masking), else SDPA's own mask."""
    from transformers.masking_utils import sdpa_mask

    config = kwargs.get("config")
    plain = (
        kwargs.get("attention_mask") is None
        and kwargs.get("q_length") == kwargs.get("kv_length")
        and not kwargs.get("q_offset")
        and not kwargs.get("use_vmap")  # set when a model adds its own mask functions
        and getattr(config, "sliding_window", None) is None
        and getattr(config, "attention_chunk_size", None) is None
    )
    return None if plain else sdpa_mask(**kwargs)


def use_packed_attention(model: Any) -> None:
    """Switch `model` (a transformers model, or a peft model around one) to `packed_sdpa_attention`. Models whose
    attention does not go through transformers' attention interface keep theirs."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, packed_sdpa_mask)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "_can_set_attn_implementation", lambda: False)():
        base.set_attn_implementation(NAME)
