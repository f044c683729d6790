"""Groups of K satisfied vs K violated samples per prompt (mDPO / mIPO data), by function and through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.errors import InputError
from posttrain.pairs.groups import satisfied_vs_violated_groups
from posttrain.records import GroupPair, Sample, Verdict, read_records, write_records


def _judged(prompt_id: str, values: list[int], finish: list[str] | None = None):
    """Samples of one prompt with one constraint verdict each (1 satisfied, 0 violated, -1 judge failure)."""
    samples, verdicts = [], []
    for i, value in enumerate(values):
        s = Sample(prompt_id=prompt_id, prompt=f"prompt {prompt_id}", completion=f"answer {i} of {prompt_id}",
                   index=i, finish_reason=(finish or ["stop"] * len(values))[i])  # fmt: skip
        samples.append(s)
        verdicts.append(Verdict(sample_id=s.id, judge="ifeval", value=value, score=float(max(value, 0))))
    return samples, verdicts


def test_k_is_the_smaller_side_and_prompts_without_both_sides_are_counted():
    s1, v1 = _judged("three_vs_two", [1, 0, 1, 0, 1])
    s2, v2 = _judged("all_pass", [1, 1])
    s3, v3 = _judged("all_fail", [0, 0])
    s4, v4 = _judged("judge_failed", [-1, 1, 0])
    groups, stats = satisfied_vs_violated_groups(s1 + s2 + s3 + s4, v1 + v2 + v3 + v4, seed=0)
    assert [g.prompt_id for g in groups] == ["three_vs_two", "judge_failed"]
    first = groups[0]
    assert len(first.chosen) == len(first.rejected) == 2
    assert set(first.rejected) == {"answer 1 of three_vs_two", "answer 3 of three_vs_two"}
    assert set(first.chosen) <= {"answer 0 of three_vs_two", "answer 2 of three_vs_two", "answer 4 of three_vs_two"}
    assert first.chosen_scores == [1.0, 1.0] and first.rejected_scores == [0.0, 0.0]
    text_of = {s.id: s.completion for s in s1}
    assert [text_of[i] for i in first.chosen_sample_ids] == first.chosen
    assert [text_of[i] for i in first.rejected_sample_ids] == first.rejected
    assert stats.skipped == {"all_satisfied": 1, "all_violated": 1, "samples_with_judge_failure": 1}
    assert stats.as_dict()["group_sizes"] == {"1": 1, "2": 1} and stats.as_dict()["responses"] == 6


def test_a_fixed_k_skips_short_prompts_and_draws_the_same_samples_on_a_rerun():
    s1, v1 = _judged("big", [1, 1, 1, 0, 0, 0])
    s2, v2 = _judged("small", [1, 0, 0])
    groups, stats = satisfied_vs_violated_groups(s1 + s2, v1 + v2, group_size=2, seed=5)
    assert [g.prompt_id for g in groups] == ["big"] and stats.skipped == {"fewer_than_2_on_a_side": 1}
    again, _ = satisfied_vs_violated_groups(s1 + s2, v1 + v2, group_size=2, seed=5)
    assert again[0].id == groups[0].id
    with pytest.raises(InputError, match="at least 1"):
        satisfied_vs_violated_groups(s1, v1, group_size=0)


def test_a_cut_off_sample_is_never_chosen_when_finishing_is_required():
    samples, verdicts = _judged("p", [1, 1, 0], finish=["stop", "length", "stop"])
    groups, stats = satisfied_vs_violated_groups(samples, verdicts)
    assert groups[0].chosen == ["answer 0 of p"] and stats.truncated == 1
    assert set(groups[0].rejected) == {"answer 2 of p"}  # K = 1: one of the two violated
    loose, _ = satisfied_vs_violated_groups(samples, verdicts, require_finished=False)
    assert len(loose[0].chosen) == 1 and loose[0].rejected == ["answer 2 of p"]


def test_cli_writes_groups_and_stats_atomically(tmp_path: Path, capsys):
    s1, v1 = _judged("a", [1, 1, 0, 0])
    s2, v2 = _judged("b", [1, 1, 1])
    samples, verdicts, out = tmp_path / "samples.jsonl", tmp_path / "verdicts.jsonl", tmp_path / "groups.jsonl"
    write_records(samples, s1 + s2)
    write_records(verdicts, v1 + v2)
    args = ["pairs", "--method", "group", "--samples", str(samples), "--verdicts", str(verdicts), "--out", str(out)]
    assert main(args) == 0
    groups = read_records(out, GroupPair)
    assert len(groups) == 1 and len(groups[0].chosen) == len(groups[0].rejected) == 2
    stats = json.loads(out.with_suffix(".stats.json").read_text())
    assert stats["groups"] == 1 and stats["skipped"] == {"all_satisfied": 1}
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.tmp"))
    assert main(["pairs", "--method", "group", "--samples", str(samples), "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "--method group needs --samples and --verdicts" in capsys.readouterr().err
    bad = args[:-1] + [str(tmp_path / "y.jsonl"), "--group-size", "-1"]
    assert main(bad) == 2 and not (tmp_path / "y.jsonl").exists()
