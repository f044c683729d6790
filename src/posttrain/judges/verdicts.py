"""From `Sample` records to `Verdict` records: the judge stage of the loop, in memory.

    verdicts = judge_samples(get_judge("ifeval", mode="fixed"), samples, prompts_by_id)

gives the same verdicts as the quickstart pipeline's instruction-following judge (tested).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, make_items
from posttrain.records import Prompt, Sample, Verdict, content_id


def verdict_id(sample_id: str, judge: str) -> str:
    """The id `Verdict(sample_id=..., judge=...)` gets, without building one (for resuming)."""
    return content_id(sample_id, judge)


def sample_items(samples: Sequence[Sample], prompts: Mapping[str, Prompt] | None, judge: Judge | None = None) -> list[Item]:
    """Items for `samples`: each sample's prompt record (constraints, gold, task) when `prompts` has it."""
    records = []
    for s in samples:
        if prompts is None:
            records.append(Prompt(prompt=s.prompt))
        elif s.prompt_id in prompts:
            records.append(prompts[s.prompt_id])
        else:
            raise InputError(f"sample {s.id} refers to prompt '{s.prompt_id}', which is not among the prompts")
    return make_items(records, [s.completion for s in samples], None, judge)


def judge_samples(judge: Judge, samples: Sequence[Sample], prompts: Mapping[str, Prompt] | None = None) -> list[Verdict]:
    judgments = judge.judge_items(sample_items(samples, prompts, judge))
    return [j.to_verdict(s.id, judge.name, s.prompt_id) for s, j in zip(samples, judgments, strict=True)]
