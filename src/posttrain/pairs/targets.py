"""Verified SFT targets: rejection-sampling fine-tuning (Llama 3 §4.2.2) on verifiable prompts, with repair.

For each prompt, the target is the first of its samples (by index) that finished and meets every constraint in
both checking modes; failing that, the first sample that `pairs.repair` can edit until every constraint holds (the
repair is re-verified by the checkers, so a target never breaks a constraint). A prompt with neither gets no
target. Cut-off samples are never targets as written: they teach the model to loop until the budget stops it.

Why repair: the embedded 135M model meets every constraint of a 1-3-constraint prompt in well under a fifth of
its samples, and never meets some formats (quote the whole answer, all capitals, repeat the request first) by
chance. Repaired targets are the model's own words in the asked-for form, so SFT moves the model toward the
format and the ending without teaching it another model's content.

With `relabel=True`, a sample that misses an "at least" content constraint (keywords, counts) is not given a
template sentence by repair: its prompt is re-phrased with what the answer does contain (`pairs.relabel`), then
repaired for the rest. The SFT row then carries the relabeled prompt (`relabeled_from` names the original).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from posttrain.constraints import check_all
from posttrain.pairs.quality import flaw
from posttrain.pairs.relabel import relabel as relabel_prompt
from posttrain.pairs.repair import cut_repetition, repair
from posttrain.records import Prompt, Sample


@dataclass
class TargetStats:
    prompts: int = 0
    sampled: int = 0  # targets that are a sample as written
    repaired: int = 0  # targets that are a repaired sample
    relabeled: int = 0  # targets whose prompt was relabeled (as written or repaired)
    without_target: int = 0
    flawed: dict[str, int] = field(default_factory=dict)  # candidates dropped by `pairs.quality.flaw`, by reason
    by_constraint: dict[str, dict[str, int]] = field(default_factory=dict)  # id -> {"prompts", "targets"}

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "by_constraint": dict(sorted(self.by_constraint.items()))}


def satisfies(sample: Sample, prompt: Prompt) -> bool:
    """Finished and every constraint met, by the reference checkers and the bug-fixed ones alike."""
    if sample.finish_reason == "length":
        return False
    return all(
        all(check_all(sample.completion, prompt.instruction_id_list, prompt.kwargs, mode=mode))
        for mode in ("ifeval", "fixed")
    )


def candidates(
    prompt: Prompt, group: list[Sample], use_repair: bool, seed: int, relabel: bool = False
) -> Iterator[tuple[str, str, Sample, Prompt]]:
    """(target text, "sampled" | "relabeled" | "repaired", the sample it came from, the prompt it answers) for
    one prompt's samples, best first: samples as written, then relabeled or repaired ones."""
    ordered = sorted(group, key=lambda s: s.index)
    for sample in ordered:
        if satisfies(sample, prompt):
            yield sample.completion, "sampled", sample, prompt
    if not use_repair and not relabel:
        return
    for sample in ordered:
        truncated = sample.finish_reason == "length"
        asked = prompt
        if relabel:
            asked = relabel_prompt(prompt, cut_repetition(sample.completion, truncated), seed) or prompt
            if asked is not prompt and satisfies(sample, asked):
                yield sample.completion, "relabeled", sample, asked
                continue
        if not use_repair:
            continue
        others = [o.completion for o in ordered if o.id != sample.id]
        fixed = repair(sample.completion, asked.instruction_id_list, asked.kwargs, truncated, others,
                       seed=seed + sample.index, add_keywords=not relabel)  # fmt: skip
        if fixed is not None:
            yield fixed, "repaired", sample, asked


def sft_targets(
    samples: Iterable[Sample],
    prompts: dict[str, Prompt],
    use_repair: bool = True,
    seed: int = 0,
    relabel: bool = False,
    drop_flawed: bool = False,
) -> tuple[list[dict[str, Any]], TargetStats]:
    """SFT rows (`prompt`, `completion`, provenance) for every prompt that has a verified target; with
    `drop_flawed`, the best candidate that `pairs.quality.flaw` does not reject."""
    by_prompt: dict[str, list[Sample]] = {}
    for sample in samples:
        by_prompt.setdefault(sample.prompt_id, []).append(sample)
    stats, rows = TargetStats(), []
    for prompt_id, group in by_prompt.items():
        prompt = prompts[prompt_id]
        stats.prompts += 1
        found, task = None, (prompt.model_extra or {}).get("base_task")
        for candidate in candidates(prompt, group, use_repair, seed, relabel):
            reason = flaw(candidate[0], candidate[3], task) if drop_flawed else None
            if reason is None:
                found = candidate
                break
            stats.flawed[reason] = stats.flawed.get(reason, 0) + 1
        for cid in prompt.instruction_id_list:
            entry = stats.by_constraint.setdefault(cid, {"prompts": 0, "targets": 0})
            entry["prompts"] += 1
            entry["targets"] += found is not None
        if found is None:
            stats.without_target += 1
            continue
        text, origin, sample, asked = found
        stats.sampled += origin == "sampled"
        stats.repaired += origin == "repaired"
        stats.relabeled += asked is not prompt
        row: dict[str, Any] = {"prompt": asked.prompt, "completion": text, "prompt_id": prompt_id,
                               "sample_id": sample.id, "origin": origin}  # fmt: skip
        if asked is not prompt:
            row |= {"relabeled_from": prompt.prompt, "instruction_id_list": asked.instruction_id_list,
                    "kwargs": asked.kwargs}  # fmt: skip
        rows.append(row)
    return rows, stats
