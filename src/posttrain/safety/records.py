"""The labelled conversation a guard classifier learns from, and its check against a category taxonomy.

One row classifies the *last* turn of a conversation, as Llama Guard does: a conversation ending with a user turn
is prompt classification (role "User"), one ending with an assistant turn is response classification ("Agent").

    {"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}],
     "label": "unsafe", "categories": ["S1", "S10"]}

`prompt` (+ optional `response`) is a shorthand for `messages`. `label` is "safe" or "unsafe"; an unsafe row names
at least one category code, a safe row none. Optional: `kind` (the seed set writes harmful / lookalike; any text),
`split` (train / heldout; else the recipe splits by id), `source`. Unknown fields are kept, as in every record.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from posttrain.errors import InputError
from posttrain.judges.llama_guard import Category, conversation
from posttrain.records import Message, Record


class GuardExample(Record):
    messages: list[Message]
    label: Literal["safe", "unsafe"]
    categories: list[str] = Field(default_factory=list)
    kind: str | None = None
    split: Literal["train", "heldout"] | None = None
    source: str | None = None
    _id_fields: ClassVar[tuple[str, ...]] = ("messages", "label", "categories")

    @model_validator(mode="before")
    @classmethod
    def _prompt_response_shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "messages" in data or "prompt" not in data:
            return data
        data = dict(data)
        messages = [{"role": "user", "content": data.pop("prompt")}]
        response = data.pop("response", None)
        if response is not None:
            messages.append({"role": "assistant", "content": response})
        return {**data, "messages": messages}

    @model_validator(mode="after")
    def _consistent(self) -> GuardExample:
        try:
            conversation(
                self.messages
            )  # Llama Guard's own rules: user/assistant turns, alternating, user first
        except InputError as err:
            raise ValueError(err.what) from None
        if self.label == "unsafe" and not self.categories:
            raise ValueError(
                'an \'unsafe\' row must name the violated categories (e.g. "categories": ["S1"])'
            )
        if self.label == "safe" and self.categories:
            raise ValueError(f"a 'safe' row names no categories, got {self.categories}")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"categories repeat a code: {self.categories}")
        return self

    @property
    def role(self) -> str:
        """ "User" (prompt classification) or "Agent" (response classification): whose turn is assessed."""
        return "Agent" if self.messages[-1].role == "assistant" else "User"

    @property
    def target(self) -> str:
        """The answer Llama Guard 3 writes: `safe`, or `unsafe` and a line of codes (`unsafe\\nS1,S10`)."""
        return "safe" if self.label == "safe" else "unsafe\n" + ",".join(self.categories)


def check_taxonomy(
    examples: Sequence[GuardExample],
    taxonomy: Sequence[Category],
    path: str | None,
    lines: Sequence[int] | None,
) -> None:
    """InputError at `file:line` for the first category that is not a code of `taxonomy` (a category's name
    written instead of its code is pointed at the code)."""
    codes = [c.code for c in taxonomy]
    by_name = {c.name.strip().rstrip(".").lower(): c.code for c in taxonomy}
    for i, example in enumerate(examples):
        for code in example.categories:
            if code in codes:
                continue
            named = by_name.get(code.strip().rstrip(".").lower())
            if named:
                hint = f"; '{code}' is the name of {named}: write the code"
            else:
                close = difflib.get_close_matches(code, codes, n=1, cutoff=0.5)
                hint = f"; did you mean '{close[0]}'?" if close else ""
            what = f"unknown category '{code}'{hint} (the taxonomy has {codes[0]}..{codes[-1]})"
            line = lines[i] if lines else i + 1
            raise InputError(what, path, line) if path else InputError(f"example {i + 1}: {what}")
