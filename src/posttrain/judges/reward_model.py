"""A reward-model judge: any `AutoModelForSequenceClassification` directory gives each response a scalar score.

The conversation is rendered as the reward trainer renders it (`posttrain.train.reward`): through the chat template
when the tokenizer has one, else `prompt + response + eos`; the score is the head's output (`label`, default 0)
at the last token. Batches are right-padded and every row's score is read at its own last real token, so the
score does not depend on the batch around it (models with a `score` head, i.e. every causal-LM-based RM); other
architectures run one sequence at a time.

A reward judge has kind "reward": a mixture uses its score as r(s, a) and never ANDs it. Its value is 1 unless
`threshold` is set (then 1 when score >= threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, Value, batched_safely
from posttrain.models.backend import as_messages


class RewardModelJudge(Judge):
    kind = "reward"

    def __init__(
        self,
        model: Any,
        batch_size: int = 8,
        max_length: int = 2048,
        threshold: float | None = None,
        label: int = 0,
        name: str | None = None,
    ) -> None:
        self.model, self.tokenizer = _load(model)
        self.batch_size, self.max_length, self.threshold, self.label = batch_size, max_length, threshold, label
        self.name = name or "reward_model"
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def render(self, item: Item) -> list[int]:
        tokenizer = self.tokenizer
        if getattr(tokenizer, "chat_template", None) is not None:
            messages = [*as_messages(item.prompt.prompt), {"role": "assistant", "content": item.completion}]
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        else:
            text = item.prompt.text + item.completion + (tokenizer.eos_token or "")
        ids = list(tokenizer(text, add_special_tokens=False).input_ids)
        if len(ids) > self.max_length:  # keep the end: the score is read at the last token
            ids = ids[-self.max_length :]
        return ids

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        return batched_safely(items, self.batch_size, self._judge_batch)

    def _judge_batch(self, items: list[Item]) -> list[Judgment]:
        scores = self.scores([self.render(item) for item in items])
        out = []
        for score in scores:
            value: Value = 1 if self.threshold is None or score >= self.threshold else 0
            out.append(Judgment(value, score, f"reward {score:.4g}"))
        return out

    def scores(self, rows: list[list[int]]) -> list[float]:
        import torch

        model = self.model
        if not hasattr(model, "score") or len(rows) == 1:
            with torch.inference_mode():
                return [float(model(input_ids=torch.tensor([r])).logits[0, self.label]) for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row)
            mask[b, : len(row)] = 1
        with torch.inference_mode():
            hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
            last = hidden[torch.arange(len(rows)), mask.sum(-1) - 1]
            return [float(x) for x in model.score(last)[:, self.label].float()]


def _load(model: Any) -> tuple[Any, Any]:
    """(model, tokenizer) from a directory or an existing pair."""
    if isinstance(model, tuple):
        loaded, tokenizer = model
        return loaded.eval(), tokenizer
    from pathlib import Path

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if not Path(str(model)).is_dir():
        raise InputError(f"reward_model judge: '{model}' is not a local model directory (there is no model hub here)")
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    loaded = AutoModelForSequenceClassification.from_pretrained(str(model), dtype=torch.float32)
    return loaded.eval(), tokenizer
