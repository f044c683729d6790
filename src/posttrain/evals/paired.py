"""Before/after on the same prompts, told apart from noise: which prompts a model gained and lost, and McNemar's
exact test on them.

A held-out set of 32 or 128 prompts moves by a few prompts between two greedy evaluations of nearly the same model,
so "21.9% → 25.0%" alone says little. Both evaluations answer the same prompts, so the comparison is paired: only
the prompts whose outcome changed carry information, gained (failed before, passed after) and lost (the reverse).
With no real change each changed prompt is a fair coin between the two; McNemar's exact test is the two-sided
binomial test of `gained` successes in `gained + lost` trials at p = 1/2 (the p-value doubles the smaller tail,
capped at 1, as scipy.stats.binomtest does for p = 1/2).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paired:
    n: int  # prompts in both evaluations
    passed_before: int
    passed_after: int
    gained: int  # failed before, passed after
    lost: int  # passed before, failed after
    p_value: float  # McNemar's exact test (two-sided) that gains and losses are equally likely

    def describe(self, unit: str = "prompts") -> str:
        return (
            f"{self.passed_before} → {self.passed_after} of {self.n} {unit} (+{self.gained} gained, "
            f"−{self.lost} lost; McNemar exact p = {self.p_value:.3g})"
        )


def mcnemar_exact(gained: int, lost: int) -> float:
    """Two-sided exact McNemar p-value: P(a split of gained + lost changes at least this uneven | a fair coin)."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1))
    return min(1.0, 2 * tail / 2**n)


def compare(before: dict[str, bool], after: dict[str, bool]) -> Paired:
    """Outcomes keyed by prompt; prompts missing from either side are left out."""
    shared = before.keys() & after.keys()
    gained = sum(1 for k in shared if after[k] and not before[k])
    lost = sum(1 for k in shared if before[k] and not after[k])
    return Paired(
        n=len(shared),
        passed_before=sum(before[k] for k in shared),
        passed_after=sum(after[k] for k in shared),
        gained=gained,
        lost=lost,
        p_value=mcnemar_exact(gained, lost),
    )


def outcomes(results: Path) -> dict[str, bool]:
    """Prompt → followed every instruction, from an `eval_results_<strict|loose>.jsonl` of `posttrain eval`."""
    rows = (json.loads(line) for line in results.read_text(encoding="utf-8").splitlines() if line.strip())
    return {row["prompt"]: bool(row["follow_all_instructions"]) for row in rows}


def compare_dirs(before: Path, after: Path, mode: str = "strict") -> Paired | None:
    """The paired comparison of two evaluation folders of one prompt set (e.g. `eval_before/heldout` and
    `eval_after/heldout`), None unless both hold their results."""
    name = f"eval_results_{mode}.jsonl"
    if not (before / name).exists() or not (after / name).exists():
        return None
    return compare(outcomes(before / name), outcomes(after / name))
