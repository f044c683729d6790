"""The Critic-RM judge (Yu et al., NAACL 2025, arXiv 2411.16646): write m critiques of a response, score each
(prompt, response, critique) with the reward head, and average the m rewards.

A Critic-RM model directory (made by `posttrain train critic-rm`, `posttrain.train.critic_rm`) is a plain causal
LM in HF format — the critic that writes critiques — plus two files:

- `reward_head.safetensors`: the scalar head (`weight`, shape (1, hidden)) read at the last token of the rendered
  conversation "critique request → critique", so the reward is conditioned on the critique;
- `critic_rm.json`: the critique request template, the score scale and the generation budget it was trained with,
  so inference renders exactly what training saw.

This module also holds the critique format both sides share: the request (`critique_messages`) and the score line
every critique ends with (`read_critique_score`, "Score: X/10" by default).

Inference (docs/methods/critic_rm.md): m critiques are sampled per response (`critiques`, `temperature`; one
greedy critique with `critiques=1, temperature=0`), each gets r(x, y, z_i), and the reward is their mean. A critique
that does not end in a valid score line is off the distribution the head was trained on: by default
(`on_unparseable="fail"`) one such critique makes the verdict −1, as a judge that could not judge; `"skip"` averages
the critiques that parse and gives −1 only when none does. Unparseable critiques are counted in `self.counts`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment, Value

HEAD_FILE = "reward_head.safetensors"
SETTINGS_FILE = "critic_rm.json"

CRITIQUE_TEMPLATE = """\
Critique the AI assistant's response to the user's request below. Say what it does well and what it gets wrong \
or leaves out: correctness, helpfulness, and whether it follows every instruction. Be specific and brief.
End with the line "Score: X/{scale}", where X is a whole number from 1 (useless) to {scale} (excellent).

[User request]
{prompt}

[Assistant response]
{response}"""

_SCORE = re.compile(r"\bscore\b[\s*_#:=]*(?:is\s+)?[\[(]?\s*[*_]*\s*(?P<num>[-+]?\d+(?:\.\d+)?)\s*[*_]*\s*[\])]?"
                    r"\s*[*_]*\s*/\s*[*_]*\s*(?P<scale>\d+)(?!\.?\d)", re.IGNORECASE)  # fmt: skip


def read_critique_score(text: str, scale: int = 10) -> tuple[int | None, str]:
    """(score, "") from a critique, or (None, what is wrong). The last "Score: X/scale" decides (a critique may
    mention a score before revising it); X must be a whole number in [1, scale]."""
    matches = list(_SCORE.finditer(text or ""))
    if not matches:
        return None, f"no 'Score: X/{scale}' line"
    last = matches[-1]
    raw, out_of = last.group("num"), int(last.group("scale"))
    if out_of != scale:
        return None, f"the last score, {raw}/{out_of}, is not on the 1-{scale} scale"
    if not raw.lstrip("+-").isdigit():
        return None, f"the last score, {raw}/{scale}, is not a whole number"
    score = int(raw)
    if not 1 <= score <= scale:
        return None, f"the last score, {raw}/{scale}, is outside 1-{scale}"
    return score, ""


def prompt_text(prompt: Any) -> str:
    """A prompt's text for the critique request: the message itself, or a conversation as `role: content`."""
    if isinstance(prompt, str):
        return prompt
    messages = [m if isinstance(m, dict) else m.model_dump() for m in prompt]
    if len(messages) == 1:
        return str(messages[0]["content"])
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def critique_messages(
    prompt: Any, response: str, template: str = CRITIQUE_TEMPLATE, scale: int = 10
) -> list[dict[str, str]]:
    """The critic's input: one user turn asking for a critique of `response` to `prompt`."""
    text = template.format(prompt=prompt_text(prompt).strip(), response=response.strip(), scale=scale)
    return [{"role": "user", "content": text}]


# ---------------------------------------------------------------------------------------------- the model


def load_critic_rm(model_dir: str | Path, dtype: Any = None) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(causal LM, reward head as nn.Linear, tokenizer, settings) of a Critic-RM directory."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir)
    if not path.is_dir():
        raise InputError(
            f"critic_rm judge: '{model_dir}' is not a local model directory (there is no model hub here)"
        )
    for name in (HEAD_FILE, SETTINGS_FILE):
        if not (path / name).exists():
            raise InputError(
                f"not a Critic-RM model directory: {name} is missing (made by `posttrain train critic-rm`)",
                path,
            )
    settings = json.loads((path / SETTINGS_FILE).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32).eval()
    weight = load_file(str(path / HEAD_FILE))["weight"]
    head = torch.nn.Linear(weight.shape[1], 1, bias=False, dtype=weight.dtype)
    with torch.no_grad():
        head.weight.copy_(weight)
    return lm, head.eval(), tokenizer, settings


def conversation_ids(tokenizer: Any, messages: list[dict[str, str]], critique: str) -> list[int]:
    """Token ids of "critique request → critique" as the trainer renders them (`train.data.render`)."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError("a Critic-RM model needs a tokenizer with a chat template")
    text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": critique}], tokenize=False
    )
    return list(tokenizer(text, add_special_tokens=False).input_ids)


def head_rewards(lm: Any, head: Any, rows: list[list[int]], pad_id: int) -> list[float]:
    """The head's output at each row's last real token (rows right-padded, so a reward does not depend on its
    batch)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    with torch.inference_mode():
        hidden = lm.get_decoder()(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        last = hidden[torch.arange(len(rows)), mask.sum(-1) - 1]
        return [float(x) for x in head(last.to(head.weight.dtype)).squeeze(-1).float()]


# ---------------------------------------------------------------------------------------------- judge


class CriticRMJudge(Judge):
    """`get_judge("critic_rm", model=<dir>, critiques=4, ...)`: the mean reward over `critiques` sampled critiques.

    `model` is a Critic-RM directory or a loaded `(lm, head, tokenizer, settings)` tuple (tests, the trainer).
    """

    kind = "reward"

    def __init__(
        self,
        model: Any,
        critiques: int = 4,
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_new_tokens: int | None = None,
        max_length: int | None = None,
        batch_size: int = 8,
        on_unparseable: Literal["fail", "skip"] = "fail",
        threshold: float | None = None,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        if critiques < 1 or batch_size < 1:
            raise InputError("critic_rm judge: critiques and batch_size must be at least 1")
        if critiques > 1 and temperature == 0:
            raise InputError(
                "critic_rm judge: several critiques need temperature > 0 (greedy ones are identical)"
            )
        if on_unparseable not in ("fail", "skip"):
            raise InputError(f"critic_rm judge: on_unparseable is 'fail' or 'skip', got {on_unparseable!r}")
        from posttrain.models.hf import HFBackend

        self.lm, self.head, self.tokenizer, self.settings = (
            model if isinstance(model, tuple) else load_critic_rm(model)
        )
        self.scale = int(self.settings.get("scale", 10))
        self.template = str(self.settings.get("template", CRITIQUE_TEMPLATE))
        self.max_new_tokens = max_new_tokens or int(self.settings.get("max_new_tokens", 256))
        self.max_length = max_length or int(self.settings.get("max_length", 2048))
        self.critiques, self.temperature, self.top_p, self.seed = critiques, temperature, top_p, seed
        self.batch_size, self.on_unparseable, self.threshold = batch_size, on_unparseable, threshold
        self.name = name or "critic_rm"
        self.backend = HFBackend(
            model_and_tokenizer=(self.lm, self.tokenizer), batch_size=batch_size * critiques
        )
        self.pad_id = self.backend.pad_id if self.backend.pad_id is not None else 0
        self.counts: Counter[str] = Counter()  # critiques written, unparseable ones, items judged -1

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        out: list[Judgment] = []
        for start in range(0, len(items), self.batch_size):
            batch = list(items[start : start + self.batch_size])
            try:
                out += self._judge_batch(batch)
            except Exception:  # only the items that fail on their own get -1
                for item in batch:
                    try:
                        out += self._judge_batch([item])
                    except Exception as err:
                        self.counts["failed"] += 1
                        out.append(Judgment(-1, None, f"judge failed: {type(err).__name__}: {err}"[:500]))
        return out

    def _judge_batch(self, items: list[Item]) -> list[Judgment]:
        from posttrain.models.backend import SamplingParams

        requests = [
            critique_messages(item.prompt.prompt, item.completion, self.template, self.scale)
            for item in items
        ]
        params = SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p, seed=self.seed
        )
        written = self.backend.generate(requests, self.critiques, params)
        rows: list[list[int]] = []
        where: list[list[int]] = []  # per item, the rows of its usable critiques
        notes: list[tuple[list[int | None], int]] = []
        for request, completions in zip(requests, written, strict=True):
            scores = [read_critique_score(c.text, self.scale)[0] for c in completions]
            bad = sum(s is None for s in scores)
            self.counts["critiques"] += len(completions)
            self.counts["unparseable"] += bad
            usable = (
                []
                if bad and self.on_unparseable == "fail"
                else [c for c, s in zip(completions, scores, strict=True) if s is not None]
            )
            mine = []
            for c in usable:
                ids = conversation_ids(self.tokenizer, request, c.text)
                mine.append(len(rows))
                rows.append(ids[-self.max_length :])  # the reward is read at the last token: keep the end
            where.append(mine)
            notes.append((scores, bad))
        rewards = head_rewards(self.lm, self.head, rows, self.pad_id) if rows else []
        out = []
        for mine, (scores, bad) in zip(where, notes, strict=True):
            shown = ",".join("?" if s is None else str(s) for s in scores)
            if not mine:
                self.counts["failed"] += 1
                why = f"{bad} of {len(scores)} critiques have no valid 'Score: X/{self.scale}' line"
                out.append(Judgment(-1, None, f"{why} (scores {shown})"))
                continue
            reward = sum(rewards[r] for r in mine) / len(mine)
            value: Value = 1 if self.threshold is None or reward >= self.threshold else 0
            detail = f"reward {reward:.4g}: mean of {len(mine)} critiques (scores {shown}/{self.scale})"
            out.append(Judgment(value, reward, detail + (f"; {bad} unparseable, skipped" if bad else "")))
        return out
