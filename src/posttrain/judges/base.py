"""The judge contract: `judge(prompts, completions, gold=None) -> list[Judgment]`, one judgment per completion.

A judgment's value follows TRL's binary-judge contract (PR #2159): 1 the completion satisfies the judge, 0 it
violates it, -1 the judge itself failed (an exception, a timeout, output it could not parse). A judge that fails on
one sample gives -1 for that sample and carries on; it never ends the run. `Judgment.to_verdict` turns a judgment
into the `Verdict` record the rest of the loop reads.

Prompts may be plain text, chat messages, `Prompt` records or dicts with `Prompt`'s fields (the IFEval judge reads
`instruction_id_list` / `kwargs` from them); completions may be text or chat messages (the last one is judged).
`gold` defaults to each prompt's `gold` field.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from posttrain.errors import InputError
from posttrain.records import Message, Prompt, Verdict, _describe_validation_error

Value = Literal[1, 0, -1]


@dataclass(frozen=True)
class Judgment:
    """A judge's answer about one completion, before it is tied to a sample id."""

    value: Value
    score: float | None = None
    detail: str = ""

    def to_verdict(self, sample_id: str, judge: str, prompt_id: str | None = None) -> Verdict:
        return Verdict(
            sample_id=sample_id, judge=judge, value=self.value, score=self.score, detail=self.detail,
            prompt_id=prompt_id,
        )  # fmt: skip


def failure(err: BaseException) -> Judgment:
    """The judgment of a judge that crashed on this sample: -1, with the error in words."""
    return Judgment(-1, None, f"judge failed: {type(err).__name__}: {err}"[:500])


@dataclass(frozen=True)
class Item:
    """One thing to judge, normalised: the prompt record, the completion text and the gold answer (if any)."""

    prompt: Prompt
    completion: str
    gold: Any = None


class Judge:
    """Base of every judge. Subclasses set `name` and implement `judge_one` (or `judge_items` for batches).

    `name` is what verdicts are recorded under (an instance may override it, e.g. two reward models). `kind` tells
    a mixture how to combine the judge: "constraint" judges are ANDed, a "reward" judge's score is the reward.
    `cpu_bound` judges are worth running in worker processes (the CLI does).
    """

    name: str = ""
    requires_gold: bool = False
    kind: Literal["constraint", "reward"] = "constraint"
    cpu_bound: bool = False

    def judge(self, prompts: Sequence[Any], completions: Sequence[Any], gold: Sequence[Any] | None = None) -> list[Judgment]:
        return self.judge_items(make_items(prompts, completions, gold, self))

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        return [self.safe_one(item) for item in items]

    def safe_one(self, item: Item) -> Judgment:
        try:
            return self.judge_one(item)
        except Exception as err:  # any failure is this sample's -1, never the run's end
            return failure(err)

    def judge_one(self, item: Item) -> Judgment:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# ------------------------------------------------------------------------------------------------ inputs


def as_prompt(prompt: Any) -> Prompt:
    """A `Prompt` from text, chat messages, a `Prompt` or a dict of `Prompt` fields."""
    if isinstance(prompt, Prompt):
        return prompt
    if isinstance(prompt, Mapping):
        if "prompt" not in prompt:
            raise InputError(f"a prompt given as a mapping needs a 'prompt' key; got keys {sorted(prompt)}")
        try:
            return Prompt.model_validate(dict(prompt))
        except ValidationError as err:
            raise InputError(f"invalid prompt: {_describe_validation_error(err)}") from None
    try:
        return Prompt(prompt=prompt)
    except ValidationError as err:
        raise InputError(f"invalid prompt: {_describe_validation_error(err)}") from None


def completion_text(completion: Any) -> str:
    """Text of a completion: a string, or the content of the last message of a conversational completion
    (TRL passes `[{"role": "assistant", "content": ...}]`)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Message):
        return completion.content
    if isinstance(completion, Mapping):
        return str(completion.get("content", ""))
    if isinstance(completion, Sequence) and completion:
        return completion_text(completion[-1])
    if isinstance(completion, Sequence):
        return ""
    raise InputError(f"a completion must be text or chat messages, got {type(completion).__name__}")


def make_items(prompts: Sequence[Any], completions: Sequence[Any], gold: Sequence[Any] | None, judge: Judge | None = None) -> list[Item]:
    if len(prompts) != len(completions):
        raise InputError(f"{len(prompts)} prompts but {len(completions)} completions; they must pair up")
    if gold is not None and len(gold) != len(completions):
        raise InputError(f"{len(gold)} gold answers but {len(completions)} completions; give one per completion")
    records = [as_prompt(p) for p in prompts]
    golds = list(gold) if gold is not None else [p.gold for p in records]
    items = [Item(p, completion_text(c), g) for p, c, g in zip(records, completions, golds, strict=True)]
    if judge is not None and judge.requires_gold:
        missing = [i for i, item in enumerate(items) if item.gold is None or item.gold == ""]
        if missing:
            raise InputError(
                f"the '{judge.name}' judge compares with a gold answer, but {len(missing)} of {len(items)} samples "
                f"have none (first: #{missing[0]}); pass gold= or set each prompt's 'gold' field"
            )
    return items


def batched_safely(items: Sequence[Item], size: int, run: Callable[[list[Item]], list[Judgment]]) -> list[Judgment]:
    """Run a batched judge; a batch that fails is retried one item at a time, so only the bad items get -1."""
    out: list[Judgment] = []
    for start in range(0, len(items), size):
        batch = list(items[start : start + size])
        try:
            out += run(batch)
        except Exception:
            for item in batch:
                try:
                    out += run([item])
                except Exception as err:
                    out.append(failure(err))
    return out


# ---------------------------------------------------------------------------------------------- registry

# name -> "module:Class". Modules are imported on first use, so `import posttrain.judges` never loads torch.
JUDGES: dict[str, str] = {
    "ifeval": "posttrain.judges.ifeval:IFEvalJudge",
    "math": "posttrain.judges.math_answer:MathJudge",
    "code": "posttrain.judges.code_exec:CodeJudge",
    "refusal": "posttrain.judges.refusal:RefusalJudge",
    "reward_model": "posttrain.judges.reward_model:RewardModelJudge",
    "llm_prob": "posttrain.judges.llm_prob:LLMProbJudge",
    "llama_guard": "posttrain.judges.llama_guard:LlamaGuardJudge",
    "rubric": "posttrain.judges.rubric:RubricJudge",
    "critic_rm": "posttrain.judges.critic_rm:CriticRMJudge",
}


def judge_class(name: str) -> type[Judge]:
    if name not in JUDGES:
        close = difflib.get_close_matches(name, list(JUDGES), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(f"unknown judge '{name}'{hint} Available: {', '.join(JUDGES)}")
    module, _, cls = JUDGES[name].partition(":")
    found: type[Judge] = getattr(importlib.import_module(module), cls)
    return found


def judge_options(name: str) -> list[str]:
    """The option names `get_judge(name, **options)` accepts."""
    signature = inspect.signature(judge_class(name).__init__)
    return [p for p in signature.parameters if p != "self"]


def check_options(name: str, options: Mapping[str, Any], label: str | None = None) -> None:
    """InputError for an option judge `name` does not have, or a required one (e.g. `model`) that is missing."""
    parameters = inspect.signature(judge_class(name).__init__).parameters
    accepted = [p for p in parameters if p != "self"]
    who = f"judge '{label}' ({name})" if label and label != name else f"judge '{name}'"
    for key in options:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{who} has no option '{key}'{hint}; its options: {', '.join(accepted) or 'none'}")
    missing = [p for p in accepted if parameters[p].default is inspect.Parameter.empty and p not in options]
    if missing:
        raise InputError(f"{who} needs the option '{missing[0]}' (e.g. {missing[0]}: <local model directory>)")


def get_judge(name: str, /, **options: Any) -> Judge:
    """A judge by registry name, e.g. `get_judge("ifeval", mode="fixed", loose=True)`."""
    check_options(name, options)
    return judge_class(name)(**options)
