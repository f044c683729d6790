"""Attention over packed rows without a materialised mask: each packed sequence attends within itself only.

A padding-free batch is one row holding several sequences whose position ids restart at each one
(`posttrain.train.data.collate`). transformers' SDPA path turns that row into a (T x T) block-diagonal causal mask and
runs attention over the whole row: for 8 sequences of ~400 tokens, 8x the attention the sequences need, through
SDPA's masked kernel. Here the row is cut where transformers' own packing test says a new sequence starts (a position
id that is not the previous one + 1) and SDPA runs causally on each piece: the same attention as the mask allows
(no token sees another sequence), at the cost of the pieces alone.

Rows of responses that share a prompt (`data.packed_rows(..., one_row=True)`: DPO's chosen and rejected, a reward
model's group) hold the prompt once and each response after it, every response's positions continuing from the
prompt's. A piece whose first position p is not 0 but at most the length of the last piece that began at 0 is such
a branch: it attends to the first p tokens of that piece and causally to itself (a p + L wide mask for its L
queries instead of the row's T x T). Any other restart begins a sequence of its own, as transformers decides.

Only those cases change. Padded batches, explicit 4-D masks, caches and decoding steps go to transformers' SDPA as
before (`posttrain_packed_sdpa` falls back to it), and so does any model whose masks are not plain causal (sliding
windows, extra mask functions). Training loops switch it on with `train.packed_attention`.
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


def row_layout(position_ids: torch.Tensor) -> list[tuple[int, int, int]]:
    """(start, end, shared) of each piece of a row of position ids: `shared` = p > 0 when the piece is a branch that
    continues the first p tokens of the last piece that began at position 0, else 0 (a sequence of its own)."""
    spans = sequence_spans(position_ids)
    firsts = position_ids[[a for a, _ in spans]].tolist()
    layout, head = [], 0  # head: length of the last piece that began at 0 (0: none to branch from)
    for (a, b), first in zip(spans, firsts, strict=True):
        shared = first if 0 < first <= head else 0
        if first == 0:
            head = b - a
        elif not shared:
            head = 0
        layout.append((a, b, shared))
    return layout


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
    layout = row_layout(position_ids.reshape(-1)) if packed else []  # type: ignore[union-attr]
    if len(layout) <= 1:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    # `split`, not slicing: its backward is one concatenation of the pieces' gradients, where each slice's backward
    # would write its piece into a zero tensor the size of the whole row.
    sizes = [b - a for a, b, _ in layout]
    pieces, head_k, head_v = [], key, value
    for (_, _, shared), q, k, v in zip(layout, query.split(sizes, 2), key.split(sizes, 2), value.split(sizes, 2),
                                       strict=True):  # fmt: skip
        if not shared:
            head_k, head_v = k, v
            pieces.append(sdpa_attention_forward(module, q, k, v, None, **kwargs)[0])
            continue
        # The branch's queries see the head's first `shared` tokens, then themselves causally (lower-right aligned).
        n = q.shape[2]
        visible = torch.ones(n, shared + n, dtype=torch.bool, device=q.device).tril(shared)
        k = torch.cat([head_k[:, :, :shared], k], dim=2)
        v = torch.cat([head_v[:, :, :shared], v], dim=2)
        pieces.append(sdpa_attention_forward(module, q, k, v, visible[None, None], **kwargs)[0])
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


def use_packed_attention(model: Any) -> bool:
    """Switch `model` (a transformers model, or a peft model around one) to `packed_sdpa_attention`; whether it now
    uses it. Models whose attention does not go through transformers' attention interface keep theirs."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa_attention)
    AttentionMaskInterface.register(NAME, packed_sdpa_mask)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "_can_set_attn_implementation", lambda: False)():
        base.set_attn_implementation(NAME)
    return getattr(base.config, "_attn_implementation", None) == NAME
