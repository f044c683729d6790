"""Groups of satisfied vs violated samples per prompt, for the multi-sample losses mDPO / mIPO.

Where rejection sampling (`rejection.py`) keeps one pair per prompt, a group keeps the two distributions: a
prompt's judged samples split into the *satisfied* ones (every constraint judge returned 1, the AND of the Mixture of
Judges; with `require_finished`, a sample cut off by its token budget is never satisfied, as for RS pairs) and the
*violated* ones, and K of each side form one `GroupPair` (docs/methods/training.md, "Multi-sample comparison").

K is the smaller side's size (`group_size=None`), or a fixed K: then prompts with fewer than K samples on a side are
skipped, so every group has the same size. A side with more than K samples gives K drawn at random (seeded per
prompt): a group stands for the policy's distribution on that side, so the draw must not favour high scores.
Identical completions are kept once and samples with a judge failure are left out (as for RS pairs); prompts
without both sides are skipped and counted by reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from posttrain.errors import InputError
from posttrain.pairs.rejection import distinct, prompt_rng, samples_by_prompt, score_samples
from posttrain.records import GroupPair, Prompt, Sample, Verdict


@dataclass
class GroupStats:
    prompts: int = 0
    groups: int = 0
    truncated: int = 0  # samples cut off by the token budget
    skipped: Counter[str] = field(default_factory=Counter)
    group_sizes: Counter[int] = field(default_factory=Counter)  # K -> number of groups

    def as_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts,
            "groups": self.groups,
            "responses": sum(2 * k * n for k, n in self.group_sizes.items()),
            "truncated": self.truncated,
            "skipped": dict(self.skipped),
            "group_sizes": {str(k): n for k, n in sorted(self.group_sizes.items())},
        }


def satisfied_vs_violated_groups(
    samples: list[Sample],
    verdicts: list[Verdict],
    prompts: dict[str, Prompt] | None = None,
    group_size: int | None = None,
    reward_judges: Iterable[str] = ("reward",),
    seed: int = 0,
    require_finished: bool = True,
) -> tuple[list[GroupPair], GroupStats]:
    """One group per prompt that has samples on both sides, in the order prompts first appear in `samples`."""
    if group_size is not None and group_size < 1:
        raise InputError(f"the group size must be at least 1, got {group_size}")
    by_prompt = samples_by_prompt(samples, verdicts)
    stats = GroupStats(prompts=len(by_prompt))
    groups: list[GroupPair] = []
    for prompt_id, mine in by_prompt.items():
        scored, failed = score_samples(mine, verdicts, reward_judges, require_finished)
        stats.truncated += sum(not s.finished for s in scored)
        if failed:
            stats.skipped["samples_with_judge_failure"] += failed
        unique = distinct(scored)
        passed = [s for s in unique if s.satisfied]
        violated = [s for s in unique if not s.satisfied]
        k = group_size or min(len(passed), len(violated))
        if not unique:
            reason = "no_judged_samples"
        elif not passed:
            reason = "all_violated"
        elif not violated:
            reason = "all_satisfied"
        elif min(len(passed), len(violated)) < k:
            reason = f"fewer_than_{k}_on_a_side"
        else:
            reason = ""
        if reason:
            stats.skipped[reason] += 1
            continue
        rng = prompt_rng(seed, prompt_id)
        chosen, rejected = rng.sample(passed, k), rng.sample(violated, k)
        prompt = prompts.get(prompt_id) if prompts else None
        groups.append(
            GroupPair(
                prompt=chosen[0].sample.prompt,
                chosen=[s.sample.completion for s in chosen],
                rejected=[s.sample.completion for s in rejected],
                prompt_id=prompt_id,
                chosen_scores=[s.score for s in chosen],
                rejected_scores=[s.score for s in rejected],
                chosen_sample_ids=[s.sample.id for s in chosen],
                rejected_sample_ids=[s.sample.id for s in rejected],
                difficulty=prompt.difficulty if prompt else None,
            )
        )
        stats.groups += 1
        stats.group_sizes[k] += 1
    return groups, stats
