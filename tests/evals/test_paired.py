"""The paired before/after comparison: counts by hand, McNemar's exact p-value pinned to scipy's binomial test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.evals.paired import compare, compare_dirs, mcnemar_exact


def test_hand_computed_p_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0  # an even split is no evidence either way
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)  # C(10,0) + C(10,1) = 11
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)
    assert mcnemar_exact(0, 5) == mcnemar_exact(5, 0)


@pytest.mark.parametrize(
    "gained,lost", [(0, 1), (1, 1), (2, 7), (7, 2), (13, 2), (15, 15), (30, 12), (0, 40), (60, 41)]
)
def test_equals_scipy_binomial_test(gained: int, lost: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert mcnemar_exact(gained, lost) == pytest.approx(
        stats.binomtest(gained, gained + lost, 0.5).pvalue, rel=1e-12
    )


def test_compare_counts_only_shared_prompts() -> None:
    before = {"a": True, "b": False, "c": False, "d": True, "only_before": True}
    after = {"a": True, "b": True, "c": False, "d": False, "only_after": False}
    paired = compare(before, after)
    assert (paired.n, paired.passed_before, paired.passed_after, paired.gained, paired.lost) == (
        4,
        2,
        2,
        1,
        1,
    )
    assert paired.p_value == 1.0
    assert "2 → 2 of 4 prompts (+1 gained, −1 lost" in paired.describe()


def _results(folder: Path, outcomes: dict[str, bool]) -> Path:
    folder.mkdir(parents=True)
    rows = [
        {"prompt": p, "follow_all_instructions": ok, "follow_instruction_list": [ok]}
        for p, ok in outcomes.items()
    ]
    (folder / "eval_results_strict.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    return folder


def test_compare_dirs_reads_eval_results(tmp_path: Path) -> None:
    before = _results(tmp_path / "before", {f"p{i}": i < 2 for i in range(20)})
    after = _results(tmp_path / "after", {f"p{i}": i < 12 for i in range(20)})
    paired = compare_dirs(before, after)
    assert paired is not None and (paired.gained, paired.lost, paired.passed_after) == (10, 0, 12)
    assert paired.p_value == pytest.approx(2 / 2**10)
    assert compare_dirs(before, tmp_path / "missing") is None
