"""Preference pairs by rejection sampling (RS): N judged samples per prompt -> (chosen, rejected).

Ranking, as CGPO and Llama 3 do it: constraint satisfaction first (a sample is *satisfied* when every constraint
judge returns 1, the AND of the Mixture of Judges), then the reward (a reward judge's score when one ran, else the
mean constraint score, i.e. the fraction of constraints met).

A sample cut off by the token budget (`finish_reason == "length"`) is never *satisfied* when `require_finished` is
on (the default): its verdicts judged a fragment, and for a small model a cut-off answer is nearly always a
degenerate repetition loop (SmolLM2-135M's greedy IFEval answers: 28 of 48 hit 384 tokens, all looping). Such a
sample still makes a good *rejected* response: it teaches the policy to finish. Between otherwise equal samples a
finished one ranks first, with the check on or off.

Contrast modes (Kim et al. 2024 found high contrast beats low, and a mix is often best):
- `high`:  best vs worst sample of the prompt.
- `low`:   the adjacent pair with the smallest positive score gap.
- `mixed`: `high` for a fraction `mixed_high_ratio` of prompts, `low` for the rest (chosen per prompt by a seeded
           hash, so reruns and resumes agree).
- `cgpo`:  CGPO's IF-data rule: chosen drawn from the satisfied set, rejected from the violated set; a prompt where
           all samples pass or all fail is skipped.

A sample with any judge failure (-1) is left out of its prompt's ranking; skipped prompts are counted by reason.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from posttrain.errors import InputError
from posttrain.records import Pair, Prompt, Sample, Verdict

CONTRASTS = ("high", "low", "mixed", "cgpo")


@dataclass
class Scored:
    sample: Sample
    satisfied: bool
    score: float
    finished: bool = True


@dataclass
class RSStats:
    prompts: int = 0
    pairs: int = 0
    truncated: int = 0  # samples cut off by the token budget
    skipped: Counter[str] = field(default_factory=Counter)
    score_gaps: list[float] = field(default_factory=list)
    pairs_per_prompt: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "prompts": self.prompts,
            "pairs": self.pairs,
            "truncated": self.truncated,
            "skipped": dict(self.skipped),
            "score_gaps": self.score_gaps,
            "pairs_per_prompt": {str(k): v for k, v in sorted(self.pairs_per_prompt.items())},
        }


def score_samples(
    samples: list[Sample],
    verdicts: Iterable[Verdict],
    reward_judges: Iterable[str] = ("reward",),
    require_finished: bool = True,
) -> tuple[list[Scored], int]:
    """Each sample's (satisfied, score); returns those with no judge failure and the count left out."""
    reward_names = set(reward_judges)
    by_sample: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        by_sample[verdict.sample_id].append(verdict)
    scored, failed = [], 0
    for sample in samples:
        judged = by_sample.get(sample.id, [])
        if not judged or any(v.value == -1 for v in judged):
            failed += 1
            continue
        constraints = [v for v in judged if v.judge not in reward_names]
        rewards = [v.score for v in judged if v.judge in reward_names and v.score is not None]
        satisfied = all(v.value == 1 for v in constraints)
        if rewards:
            score = sum(rewards) / len(rewards)
        else:
            parts = [v.score if v.score is not None else float(v.value) for v in constraints]
            score = sum(parts) / len(parts) if parts else 0.0
        finished = sample.finish_reason != "length"
        scored.append(Scored(sample, satisfied and (finished or not require_finished), score, finished))
    return scored, failed


def distinct(scored: list[Scored]) -> list[Scored]:
    """The first sample of each completion text: identical completions carry no preference signal."""
    seen: set[str] = set()
    unique = []
    for s in scored:
        text = s.sample.completion.strip()
        if text not in seen:
            seen.add(text)
            unique.append(s)
    return unique


def _rank_key(s: Scored) -> tuple[bool, bool, float]:
    return (s.satisfied, s.finished, s.score)


def _choose(ranked: list[Scored], contrast: str, rng: random.Random) -> tuple[Scored, Scored] | str:
    """(chosen, rejected) from samples sorted best-first, or the reason to skip the prompt."""
    if contrast == "cgpo":
        passed = [s for s in ranked if s.satisfied]
        failed = [s for s in ranked if not s.satisfied]
        if not passed:
            return "all_violated"
        if not failed:
            return "all_satisfied"
        return rng.choice(passed), rng.choice(failed)
    if _rank_key(ranked[0]) == _rank_key(ranked[-1]):
        return "no_contrast"
    if contrast == "high":
        return ranked[0], ranked[-1]
    # low: adjacent samples with the smallest positive gap (satisfaction counts as a gap of 1 in score units)
    best: tuple[float, int] | None = None
    for i in range(len(ranked) - 1):
        a, b = ranked[i], ranked[i + 1]
        if _rank_key(a) == _rank_key(b):
            continue
        gap = (a.score - b.score) + (1.0 if a.satisfied != b.satisfied else 0.0) + (a.finished != b.finished)
        if best is None or gap < best[0]:
            best = (gap, i)
    assert best is not None  # the ends differ, so some adjacent pair differs
    return ranked[best[1]], ranked[best[1] + 1]


def prompt_rng(seed: int, prompt_id: str) -> random.Random:
    """A random stream of its own per prompt: reruns, resumes and other prompts never shift it."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def samples_by_prompt(samples: list[Sample], verdicts: list[Verdict]) -> dict[str, list[Sample]]:
    """Samples grouped by prompt, in the order prompts first appear; a verdict on an unknown sample is an error."""
    known = {s.id for s in samples}
    stray = next((v for v in verdicts if v.sample_id not in known), None)
    if stray is not None:
        raise InputError(f"verdict {stray.id} ({stray.judge}) refers to sample {stray.sample_id}, not in the samples")
    by_prompt: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_prompt[sample.prompt_id].append(sample)
    return by_prompt


def rejection_sampling_pairs(
    samples: list[Sample],
    verdicts: list[Verdict],
    prompts: dict[str, Prompt] | None = None,
    contrast: str = "high",
    mixed_high_ratio: float = 0.5,
    reward_judges: Iterable[str] = ("reward",),
    seed: int = 0,
    require_finished: bool = True,
) -> tuple[list[Pair], RSStats]:
    """One pair per prompt (when the prompt has any contrast), in the order prompts first appear in `samples`."""
    if contrast not in CONTRASTS:
        raise InputError(f"unknown contrast '{contrast}'; choose one of {', '.join(CONTRASTS)}")
    if not 0.0 <= mixed_high_ratio <= 1.0:
        raise InputError(f"mixed_high_ratio must be in [0, 1], got {mixed_high_ratio}")
    by_prompt = samples_by_prompt(samples, verdicts)
    stats = RSStats(prompts=len(by_prompt))
    pairs: list[Pair] = []
    for prompt_id, group in by_prompt.items():
        scored, failed = score_samples(group, verdicts, reward_judges, require_finished)
        stats.truncated += sum(not s.finished for s in scored)
        if failed:
            stats.skipped["samples_with_judge_failure"] += failed
        unique = distinct(scored)
        if len(unique) < 2:
            stats.skipped["fewer_than_2_distinct_samples"] += 1
            stats.pairs_per_prompt[0] += 1
            continue
        rng = prompt_rng(seed, prompt_id)
        mode = contrast
        if contrast == "mixed":
            mode = "high" if rng.random() < mixed_high_ratio else "low"
        ranked = sorted(unique, key=lambda s: (_rank_key(s), -s.sample.index), reverse=True)
        picked = _choose(ranked, mode, rng)
        if isinstance(picked, str):
            stats.skipped[picked] += 1
            stats.pairs_per_prompt[0] += 1
            continue
        chosen, rejected = picked
        prompt = prompts.get(prompt_id) if prompts else None
        pairs.append(
            Pair(
                prompt=chosen.sample.prompt,
                chosen=chosen.sample.completion,
                rejected=rejected.sample.completion,
                prompt_id=prompt_id,
                method="rs",
                chosen_score=chosen.score,
                rejected_score=rejected.score,
                difficulty=prompt.difficulty if prompt else None,
                contrast=mode,
                chosen_satisfied=chosen.satisfied,
                rejected_satisfied=rejected.satisfied,
                chosen_sample_id=chosen.sample.id,
                rejected_sample_id=rejected.sample.id,
            )
        )
        stats.pairs += 1
        stats.pairs_per_prompt[1] += 1
        stats.score_gaps.append(round(chosen.score - rejected.score, 6))
    return pairs, stats
