from __future__ import annotations

import pytest

from posttrain.errors import InputError
from posttrain.pairs.rejection import rejection_sampling_pairs
from posttrain.records import Sample, Verdict


def _group(prompt_id: str, outcomes: list[tuple[int, float]], judge: str = "ifeval"):
    """Samples of one prompt with one constraint verdict each: (value, score)."""
    samples, verdicts = [], []
    for i, (value, score) in enumerate(outcomes):
        s = Sample(prompt_id=prompt_id, prompt=f"prompt {prompt_id}", completion=f"answer {i} of {prompt_id}", index=i)
        samples.append(s)
        verdicts.append(Verdict(sample_id=s.id, judge=judge, value=value, score=score))
    return samples, verdicts


def test_high_contrast_takes_best_and_worst():
    samples, verdicts = _group("p", [(0, 0.5), (1, 1.0), (0, 0.0), (0, 0.75)])
    pairs, stats = rejection_sampling_pairs(samples, verdicts, contrast="high")
    assert len(pairs) == 1 and stats.pairs == 1
    assert pairs[0].chosen == "answer 1 of p" and pairs[0].rejected == "answer 2 of p"
    assert pairs[0].chosen_score == 1.0 and pairs[0].rejected_score == 0.0
    assert stats.score_gaps == [1.0]


def test_low_contrast_takes_the_smallest_adjacent_gap():
    samples, verdicts = _group("p", [(0, 0.5), (1, 1.0), (0, 0.0), (0, 0.4)])
    pairs, _ = rejection_sampling_pairs(samples, verdicts, contrast="low")
    assert (pairs[0].chosen, pairs[0].rejected) == ("answer 0 of p", "answer 3 of p")


def test_satisfaction_outranks_reward():
    samples, _ = _group("p", [(0, 0.0), (0, 0.0)])
    verdicts = [
        Verdict(sample_id=samples[0].id, judge="ifeval", value=1, score=1.0),
        Verdict(sample_id=samples[0].id, judge="reward", value=1, score=-3.0),
        Verdict(sample_id=samples[1].id, judge="ifeval", value=0, score=0.5),
        Verdict(sample_id=samples[1].id, judge="reward", value=1, score=5.0),
    ]
    pairs, _ = rejection_sampling_pairs(samples, verdicts, contrast="high")
    assert pairs[0].chosen == samples[0].completion
    assert pairs[0].chosen_score == -3.0  # the reward judge's score ranks within a satisfaction class


def test_cgpo_rule_skips_all_pass_and_all_fail_prompts():
    s1, v1 = _group("all_pass", [(1, 1.0), (1, 1.0)])
    s2, v2 = _group("all_fail", [(0, 0.0), (0, 0.5)])
    s3, v3 = _group("mixed", [(1, 1.0), (0, 0.0), (0, 0.5)])
    pairs, stats = rejection_sampling_pairs(s1 + s2 + s3, v1 + v2 + v3, contrast="cgpo", seed=3)
    assert [p.prompt_id for p in pairs] == ["mixed"]
    assert pairs[0].chosen == "answer 0 of mixed"
    assert stats.skipped == {"all_satisfied": 1, "all_violated": 1}


def test_judge_failures_ties_and_duplicates_are_counted():
    s1, v1 = _group("tied", [(1, 1.0), (1, 1.0)])
    s2, v2 = _group("failing", [(-1, 0.0), (1, 1.0)])
    s3 = [Sample(prompt_id="dup", prompt="q", completion="same", index=i) for i in range(2)]
    v3 = [Verdict(sample_id=s.id, judge="ifeval", value=i, score=float(i)) for i, s in enumerate(s3)]
    pairs, stats = rejection_sampling_pairs(s1 + s2 + s3, v1 + v2 + v3)
    assert pairs == []
    assert stats.skipped == {
        "no_contrast": 1,
        "samples_with_judge_failure": 1,
        "fewer_than_2_distinct_samples": 2,
    }


def test_mixed_is_deterministic_and_uses_both_modes():
    samples, verdicts = [], []
    for k in range(40):
        s, v = _group(f"p{k}", [(0, 0.0), (0, 0.25), (0, 0.5), (1, 1.0)])
        samples += s
        verdicts += v
    first, _ = rejection_sampling_pairs(samples, verdicts, contrast="mixed", seed=7)
    again, _ = rejection_sampling_pairs(samples, verdicts, contrast="mixed", seed=7)
    assert [p.id for p in first] == [p.id for p in again]
    modes = {p.contrast for p in first}
    assert modes == {"high", "low"}


def test_bad_arguments_are_input_errors():
    samples, verdicts = _group("p", [(0, 0.0), (1, 1.0)])
    with pytest.raises(InputError, match="unknown contrast"):
        rejection_sampling_pairs(samples, verdicts, contrast="extreme")
    stray = Verdict(sample_id="nope", judge="ifeval", value=1)
    with pytest.raises(InputError, match="refers to sample nope"):
        rejection_sampling_pairs(samples, [*verdicts, stray])


def test_a_cut_off_sample_is_never_the_satisfied_chosen_but_can_be_rejected():
    samples, verdicts = _group("p", [(1, 1.0), (1, 1.0), (0, 0.5)])
    samples[0] = samples[0].model_copy(update={"finish_reason": "length"})
    samples[1] = samples[1].model_copy(update={"finish_reason": "stop"})
    samples[2] = samples[2].model_copy(update={"finish_reason": "stop"})
    pairs, stats = rejection_sampling_pairs(samples, verdicts, contrast="high")
    assert (pairs[0].chosen, pairs[0].rejected) == ("answer 1 of p", "answer 0 of p")
    assert not pairs[0].rejected_satisfied and stats.truncated == 1
    # cgpo: the cut-off sample joins the violated set, so the prompt is no longer all-satisfied
    only_two = [0, 1]
    cut = [samples[i] for i in only_two]
    pairs, stats = rejection_sampling_pairs(cut, verdicts[:2], contrast="cgpo")
    assert (pairs[0].chosen, pairs[0].rejected) == ("answer 1 of p", "answer 0 of p")
    # off: the cut-off sample counts as satisfied again (finishing only breaks ties), so cgpo finds no violation
    pairs, stats = rejection_sampling_pairs(cut, verdicts[:2], contrast="cgpo", require_finished=False)
    assert pairs == [] and stats.skipped == {"all_satisfied": 1}
