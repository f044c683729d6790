"""From records to token ids, target masks and padding-free batches.

A *sequence* is the token ids of `prompt + response` rendered with the tokenizer's chat template, plus a boolean per
token saying whether it is a training target (its log-probability counts in the loss). Prompt tokens are never
targets. With `mask_format_tokens`, only the tokens of the assistant's *content* are targets: the end-of-turn and
header tokens the template adds around it are masked, as Llama 3 found necessary for DPO (the shared formatting
tokens otherwise get contradictory gradients from chosen and rejected, causing tail repetition and abrupt stops).
SFT keeps them by default, so the model still learns to stop.

Truncation policy: the prompt is never cut. If `prompt + response` exceeds `max_length`, the response is cut from
the right. If the prompt leaves no room for a single target token, the row is an error (`long_prompt="error"`,
default) or is dropped and counted (`long_prompt="skip"`).

Batches are padding-free: the sequences of a batch are packed into one row with `position_ids` restarting at 0 for
each, which transformers turns into a block-diagonal causal mask (no token attends across sequences). Sorting by
length (`bucket_by_length`) is still useful for the padded fallback (`packing=False`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from posttrain.errors import InputError
from posttrain.records import Message, Text


@dataclass
class Sequence:
    ids: list[int]
    targets: list[bool]  # targets[i]: token i is predicted from position i-1 and counts in the loss

    @property
    def n_targets(self) -> int:
        return sum(self.targets)


def as_messages(value: Text, role: str) -> list[dict[str, Any]]:
    """A plain string becomes one message of `role`; conversational messages pass through as dicts."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [m.model_dump() if isinstance(m, Message) else dict(m) for m in value]


def check_tokenizer(model: Any, tokenizer: Any) -> None:
    """Refuse a tokenizer whose ids the model cannot embed (a tokenizer from another model family)."""
    embeddings = model.get_input_embeddings()
    rows = int(embeddings.weight.shape[0]) if embeddings is not None else int(model.config.vocab_size)
    if len(tokenizer) > rows:
        raise InputError(
            f"mismatched tokenizer: it has {len(tokenizer)} tokens but the model embeds only {rows}; "
            "use the tokenizer saved with the model"
        )


def render(
    tokenizer: Any,
    prompt: Text,
    response: Text,
    max_length: int,
    mask_format_tokens: bool,
    end_of_turn_target: bool = False,
) -> Sequence | None:
    """Token ids and target mask of one `prompt + response`; None if the prompt leaves no room (see policy).

    `end_of_turn_target` keeps the first token after the response content (the end of turn) a target even when format
    tokens are masked: for a chosen response whose rejected twin was cut off by the token budget, stopping is the
    very difference to learn (the rejected side has no end of turn, so the gradients do not contradict)."""
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if has_template:
        prompt_msgs = as_messages(prompt, "user")
        response_msgs = as_messages(response, "assistant")
        prompt_text = tokenizer.apply_chat_template(prompt_msgs, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(prompt_msgs + response_msgs, tokenize=False)
        if not full_text.startswith(prompt_text):
            raise InputError(
                "the chat template renders the prompt differently with and without the response, "
                "so response tokens cannot be located"
            )
        contents = [str(m.get("content", "")) for m in response_msgs]
    else:
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise InputError("conversational records need a tokenizer with a chat template")
        prompt_text = prompt
        full_text = prompt + response + (tokenizer.eos_token or "")
        contents = [response]
    if not any(c.strip() for c in contents):
        raise InputError("the response is empty")

    encoded = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    ids: list[int] = list(encoded["input_ids"])
    offsets: list[tuple[int, int]] = [tuple(o) for o in encoded["offset_mapping"]]

    # Character spans of the assistant content (everything after the prompt that is not template formatting).
    spans: list[tuple[int, int]] = []
    cursor = len(prompt_text)
    for content in contents:
        start = full_text.find(content, cursor)
        if start < 0:
            raise InputError("could not find the response content in the rendered chat template")
        spans.append((start, start + len(content)))
        cursor = start + len(content)

    boundary = len(prompt_text)
    content_end = spans[-1][1]
    targets = []
    end_of_turn = end_of_turn_target
    for start, end in offsets:
        in_response = end > boundary
        if in_response and mask_format_tokens:
            in_response = any(start < s_end and end > s_start for s_start, s_end in spans)
            if end_of_turn and start >= content_end and full_text[start:end].strip():
                in_response, end_of_turn = True, False
        targets.append(in_response)
    if targets:
        targets[0] = False  # the first token has nothing to be predicted from

    ids, targets = ids[:max_length], targets[:max_length]
    if not any(targets):
        return None
    return Sequence(ids, targets)


def long_prompt_error(max_length: int) -> InputError:
    return InputError(
        f"the prompt leaves no room for a response within max_length={max_length} "
        "(the prompt is never truncated); raise data.max_length or set data.long_prompt=skip"
    )


@dataclass
class Source:
    """Where the examples came from, so an error names `file:line` (or just the example's position)."""

    path: str | None = None
    lines: list[int] | None = None

    def error(self, index: int, err: InputError) -> InputError:
        if self.path is None:
            return InputError(f"example {index + 1}: {err.what}")
        line = self.lines[index] if self.lines else index + 1
        return InputError(err.what, self.path, line)


def read_rows_with_lines(path: str, kind: Any) -> tuple[list[Any], Source]:
    """Validated records plus their line numbers (row numbers for Parquet), for errors that point at the row."""
    from posttrain.records import iter_jsonl_rows, parse_row, read_records

    if str(path).endswith(".parquet"):
        rows = read_records(path, kind)
        return rows, Source(str(path), list(range(1, len(rows) + 1)))
    rows, lines = [], []
    for line, row in iter_jsonl_rows(path):
        rows.append(parse_row(row, kind, path, line))
        lines.append(line)
    return rows, Source(str(path), lines)


# ---------------------------------------------------------------------------------------------------- batching


def plan_batches(
    lengths: list[int], batch_size: int, seed: int, epoch: int, shuffle: bool, bucket_by_length: bool
) -> list[list[int]]:
    """The order of examples for one epoch, as batches of indices. Deterministic in (seed, epoch), so a resumed
    run finds the same batches and skips the ones already done."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    if shuffle:
        rng.shuffle(order)
    if bucket_by_length:
        order.sort(key=lambda i: lengths[i])  # stable: ties keep the shuffled order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and bucket_by_length:
        rng.shuffle(batches)  # similar lengths within a batch, random order of batches
    return batches


def forward_passes(micro_batches: list[list[int]], per_forward: int | None) -> list[tuple[list[int], list[int]]]:
    """(micro-batch, part) for each forward/backward pass: every micro-batch cut into parts of `per_forward`."""
    out = []
    for idx in micro_batches:
        size = per_forward or len(idx)
        out += [(idx, idx[k : k + size]) for k in range(0, len(idx), size)]
    return out


@dataclass
class Batch:
    """Sequences ready for the model, and where their target tokens are.

    `pred_index` indexes the flattened (rows x columns) hidden states at the position that predicts each target
    token `target_ids`; `target_seq` says which sequence the target belongs to.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    pred_index: torch.Tensor
    target_ids: torch.Tensor
    target_seq: torch.Tensor
    n_seqs: int
    n_tokens: int  # non-padding tokens (prompt + response) of all sequences
    seq_end: torch.Tensor  # flat index of each sequence's last token (where a reward head reads its score)

    def lengths(self) -> torch.Tensor:
        """Number of target tokens per sequence."""
        return torch.bincount(self.target_seq, minlength=self.n_seqs)


def collate(seqs: list[Sequence], pad_id: int, packing: bool = True) -> Batch:
    if packing:
        rows = [[t for s in seqs for t in s.ids]]
        row_of = [0] * len(seqs)
        offset_of, total = [], 0
        for s in seqs:
            offset_of.append(total)
            total += len(s.ids)
        width = total
        positions = [[p for s in seqs for p in range(len(s.ids))]]
        attention = None
    else:
        width = max(len(s.ids) for s in seqs)
        rows = [s.ids + [pad_id] * (width - len(s.ids)) for s in seqs]
        row_of = list(range(len(seqs)))
        offset_of = [0] * len(seqs)
        positions = [list(range(width)) for _ in seqs]
        attention = torch.tensor([[1] * len(s.ids) + [0] * (width - len(s.ids)) for s in seqs])
    pred_index, target_ids, target_seq, seq_end = [], [], [], []
    for k, s in enumerate(seqs):
        base = row_of[k] * width + offset_of[k]
        seq_end.append(base + len(s.ids) - 1)
        for i, is_target in enumerate(s.targets):
            if is_target:
                pred_index.append(base + i - 1)
                target_ids.append(s.ids[i])
                target_seq.append(k)
    return Batch(
        input_ids=torch.tensor(rows),
        position_ids=torch.tensor(positions),
        attention_mask=attention,
        pred_index=torch.tensor(pred_index, dtype=torch.long),
        target_ids=torch.tensor(target_ids, dtype=torch.long),
        target_seq=torch.tensor(target_seq, dtype=torch.long),
        n_seqs=len(seqs),
        n_tokens=sum(len(s.ids) for s in seqs),
        seq_end=torch.tensor(seq_end, dtype=torch.long),
    )


def pad_token_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def _shared_prefix(seqs: list[Sequence]) -> int:
    n = min(len(s.ids) for s in seqs)
    for k in range(n):
        if any(s.ids[k] != seqs[0].ids[k] for s in seqs[1:]):
            return k
    return n - 1  # keep at least one token of each response


def packed_rows(groups: list[list[Sequence]], pad: int, one_row: bool = False) -> Batch:
    """Each group (sequences sharing a prompt) as one row: the common prefix once, then each sequence's rest side
    by side, with a 4-D block mask (a token sees the prefix and its own sequence's earlier tokens only) and position
    ids that continue from the prefix. Every sequence sees exactly the context it has alone, so its log-probs and
    last-token states equal the unpacked ones (to float rounding) for a fraction of the tokens. Sequences are
    numbered group by group (group g's b-th sequence is number sum of earlier group sizes + b).

    `one_row`: every group in a single row, one after the other, with no padding and no mask: the position ids
    alone say where a sequence forks from its prefix, which only the packed-row attention reads
    (`train/packed_attention.py`); a model with another attention must get the masked rows."""
    layouts = []
    for seqs in groups:
        prefix = _shared_prefix(seqs)
        ids, pos, block = list(seqs[0].ids[:prefix]), list(range(prefix)), [0] * prefix
        starts, ends = [], []
        for b, s in enumerate(seqs, start=1):
            tail = s.ids[prefix:]
            starts.append(len(ids))
            ids += tail
            pos += range(prefix, prefix + len(tail))
            block += [b] * len(tail)
            ends.append(len(ids) - 1)
        layouts.append((seqs, prefix, ids, pos, block, starts, ends))
    if one_row:  # (row, offset in the row) of each group
        places, total = [], 0
        for layout in layouts:
            places.append((0, total))
            total += len(layout[2])
        n_rows, width = 1, total
    else:
        places = [(r, 0) for r in range(len(layouts))]
        n_rows, width = len(layouts), max(len(layout[2]) for layout in layouts)
    input_ids = torch.full((n_rows, width), pad, dtype=torch.long)
    position_ids = torch.zeros((n_rows, width), dtype=torch.long)
    blocks = torch.full((n_rows, width), -1, dtype=torch.long)  # -1 = padding
    seq_end: list[int] = []
    pred_index: list[int] = []
    target_ids: list[int] = []
    target_seq: list[int] = []
    for (r, offset), (seqs, prefix, ids, pos, block, starts, ends) in zip(places, layouts, strict=True):
        base = r * width + offset
        input_ids[r, offset : offset + len(ids)] = torch.tensor(ids)
        position_ids[r, offset : offset + len(ids)] = torch.tensor(pos)
        blocks[r, offset : offset + len(ids)] = torch.tensor(block)
        for s, start, end in zip(seqs, starts, ends, strict=True):
            number = len(seq_end)
            seq_end.append(base + end)
            for i, is_target in enumerate(s.targets):
                if is_target:  # token i is predicted at token i - 1, in the shared prefix or in this sequence's rest
                    at = i - 1 if i - 1 < prefix else start + (i - 1 - prefix)
                    pred_index.append(base + at)
                    target_ids.append(s.ids[i])
                    target_seq.append(number)
    if one_row:
        mask = None
    else:
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        q, k = blocks.unsqueeze(2), blocks.unsqueeze(1)
        visible = causal & ((k == 0) | (k == q)) & (k >= 0)
        visible |= torch.eye(width, dtype=torch.bool)  # padding rows attend to themselves (no all-masked softmax row)
        mask = visible.unsqueeze(1)
    return Batch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=mask,
        pred_index=torch.tensor(pred_index, dtype=torch.long),
        target_ids=torch.tensor(target_ids, dtype=torch.long),
        target_seq=torch.tensor(target_seq, dtype=torch.long),
        n_seqs=len(seq_end),
        n_tokens=sum(len(s.ids) for seqs in groups for s in seqs),
        seq_end=torch.tensor(seq_end, dtype=torch.long),
    )
