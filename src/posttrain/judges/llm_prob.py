"""Token-probability LLM judges, as CGPO's LLM-based judges: no sampling, one forward pass per sample.

Fill a template with the prompt, the response (and the gold answer), run the judge model once and read the
next-token distribution p after the filled template:

    score = P(positive) / (P(positive) + P(negative)),   value = 1 if score >= threshold else 0

where P(positive) sums p over the first tokens of the positive words (e.g. "TRUE", "True"), likewise P(negative).
Shipped templates (`TEMPLATES`): CGPO's factuality judge (positive "True", negative "False"; needs a ground truth)
and its false-refusal judge (`[INST] {response} [\\INST]`, a fine-tuned classifier whose negative token "True"
means refusal). The factuality text is CGPO's as digested in methods.md with the elided middle line reconstructed;
see docs/methods/judges.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, Value, batched_safely
from posttrain.models.backend import as_messages


@dataclass(frozen=True)
class Template:
    text: str  # str.format fields: {prompt}, {response}, {gold}
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    chat: bool  # send the filled text as a user turn through the chat template (else as raw text)
    needs_gold: bool = False


TEMPLATES: dict[str, Template] = {
    "factuality": Template(
        text=(
            "Here is a question and a ground truth answer:\n"
            "Question: {prompt}\n"
            "Ground truth answer: {gold}\n"
            "Now, you are given an answer from the AI:\n"  # reconstructed: methods.md elides this line ("…")
            "AI: {response}\n"
            "Does the AI's answer contains the factual information from the above ground truth answer? "
            "Answer in TRUE or FALSE."
        ),
        positive=("TRUE", "True"),
        negative=("FALSE", "False"),
        chat=True,
        needs_gold=True,
    ),
    # CGPO's fine-tuned Llama-3-8B classifier; its format (with the paper's backslash) is kept as published.
    "false_refusal": Template(text="[INST] {response} [\\INST]", positive=("False",), negative=("True",), chat=False),
}


class LLMProbJudge(Judge):
    cpu_bound = False

    def __init__(
        self,
        model: Any = "embedded",
        template: str = "factuality",
        text: str | None = None,
        positive: list[str] | str | None = None,
        negative: list[str] | str | None = None,
        chat: bool | None = None,
        threshold: float = 0.5,
        batch_size: int = 8,
        name: str | None = None,
    ) -> None:
        if text is None and template not in TEMPLATES:
            raise InputError(f"llm_prob judge: unknown template '{template}'; shipped: {', '.join(TEMPLATES)}")
        base = TEMPLATES.get(template, TEMPLATES["factuality"])
        self.template = Template(
            text=text if text is not None else base.text,
            positive=_words(positive) or base.positive,
            negative=_words(negative) or base.negative,
            chat=base.chat if chat is None else chat,
            needs_gold="{gold}" in (text if text is not None else base.text),
        )
        self.name = name or (template if text is None else "llm_prob")
        self.requires_gold = self.template.needs_gold
        self.threshold, self.batch_size = threshold, batch_size
        self.backend = load_hf(model)

    def render(self, item: Item) -> list[int]:
        """Token ids of the filled template, ready for the next-token distribution."""
        filled = self.template.text.format(prompt=item.prompt.text, response=item.completion, gold=item.gold)
        return prompt_ids(self.backend, filled, self.template.chat)

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        return batched_safely(items, self.batch_size, self._judge_batch)

    def _judge_batch(self, items: list[Item]) -> list[Judgment]:
        rows = [self.render(item) for item in items]
        probs = next_token_probs(self.backend.model, rows, self.backend.pad_id)
        out = []
        for ids, p in zip(rows, probs, strict=True):
            pos = float(p[answer_token_ids(self.backend.tokenizer, ids, self.template.positive)].sum())
            neg = float(p[answer_token_ids(self.backend.tokenizer, ids, self.template.negative)].sum())
            if pos + neg <= 0:
                out.append(Judgment(-1, None, "the judge gives both answer tokens zero probability"))
                continue
            score = pos / (pos + neg)
            value: Value = 1 if score >= self.threshold else 0
            out.append(Judgment(value, score, f"P(positive)={pos:.4g}, P(negative)={neg:.4g}"))
        return out


def _words(value: list[str] | str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


# ---------------------------------------------------------------------------------- shared with llama_guard


def load_hf(model: Any) -> Any:
    """An `HFBackend` from a name/dir, or the backend (or anything with `model` and `tokenizer`) given."""
    if hasattr(model, "model") and hasattr(model, "tokenizer"):
        return model
    from posttrain.models.hf import HFBackend

    return HFBackend(str(model))


def prompt_ids(backend: Any, text: str, chat: bool) -> list[int]:
    if chat:
        return list(backend.encode(as_messages(text)))
    return list(backend.tokenizer(text, add_special_tokens=True).input_ids)


def answer_token_ids(tokenizer: Any, context: list[int], words: Sequence[str]) -> list[int]:
    """The distinct first tokens of `words` written right after `context` (tokenised in context, so a word that
    the tokenizer merges with a leading space or newline gets the token the model would actually emit)."""
    prefix = tokenizer.decode(context)
    base = list(tokenizer(prefix, add_special_tokens=False).input_ids)
    ids = []
    for word in words:
        full = list(tokenizer(prefix + word, add_special_tokens=False).input_ids)
        if full[: len(base)] == base and len(full) > len(base):
            ids.append(full[len(base)])
        else:  # the word merged with the end of the context: fall back to the word on its own
            ids.append(tokenizer(word, add_special_tokens=False).input_ids[0])
    return sorted(set(ids))


def next_token_probs(model: Any, rows: list[list[int]], pad_id: int) -> Any:
    """Softmax of the next-token logits after each row: one left-padded forward pass, last position only."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, width - len(row) :] = torch.tensor(row)
        mask[b, width - len(row) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
    return torch.softmax(logits[:, -1, :].float(), dim=-1)
