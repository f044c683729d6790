"""Verified SFT targets: a satisfying finished sample is taken as written, else a repaired one; whatever is taken
meets every constraint in both checking modes, and a cut-off sample is never a target as written."""

from __future__ import annotations

from posttrain.constraints import check_all
from posttrain.pairs.targets import sft_targets
from posttrain.records import Prompt, Sample

LOWER = ["change_case:english_lowercase"]
QUOTE = ["startend:quotation"]


def _prompt(ids: list[str]) -> Prompt:
    return Prompt(prompt=f"Write about rivers. ({', '.join(ids)})", instruction_id_list=ids, kwargs=[{} for _ in ids])


def _sample(prompt: Prompt, text: str, index: int, finish: str = "stop") -> Sample:
    return Sample(prompt_id=prompt.id, prompt=prompt.prompt, completion=text, index=index, finish_reason=finish)


def test_a_satisfying_finished_sample_is_taken_as_written():
    p = _prompt(LOWER)
    samples = [_sample(p, "Rivers Flow to the sea.", 0), _sample(p, "rivers flow to the sea.", 1)]
    rows, stats = sft_targets(samples, {p.id: p})
    assert [(r["completion"], r["origin"]) for r in rows] == [("rivers flow to the sea.", "sampled")]
    assert rows[0]["sample_id"] == samples[1].id
    assert (stats.sampled, stats.repaired, stats.without_target) == (1, 0, 0)


def test_without_a_satisfying_sample_a_verified_repair_is_the_target():
    p = _prompt(QUOTE)
    samples = [_sample(p, "Rivers flow to the sea. They carry water.", 0)]
    rows, stats = sft_targets(samples, {p.id: p})
    assert rows[0]["origin"] == "repaired" and rows[0]["completion"] == '"Rivers flow to the sea. They carry water."'
    assert stats.repaired == 1
    rows, stats = sft_targets(samples, {p.id: p}, use_repair=False)
    assert rows == [] and stats.without_target == 1


def test_a_cut_off_sample_is_never_a_target_as_written():
    p = _prompt(LOWER)
    looping = "rivers flow to the sea. rivers flow to the sea. rivers flow to the sea. rivers fl"
    rows, _ = sft_targets([_sample(p, looping, 0, finish="length")], {p.id: p})
    assert rows[0]["origin"] == "repaired" and rows[0]["completion"] == "rivers flow to the sea."


def test_every_target_meets_every_constraint_in_both_modes():
    prompts = [_prompt(LOWER), _prompt(QUOTE), _prompt(["combination:two_responses"]), _prompt(LOWER + QUOTE)]
    texts = ["Rivers Flow.", "The Nile is long. It floods each year.", "Rivers are wide.", "Rivers run to the sea, and the sea feeds the rain."]
    samples = [_sample(p, t, 0) for p, t in zip(prompts, texts, strict=True)]
    rows, stats = sft_targets(samples, {p.id: p for p in prompts})
    by_id = {p.id: p for p in prompts}
    for row in rows:
        p = by_id[row["prompt_id"]]
        for mode in ("ifeval", "fixed"):
            assert all(check_all(row["completion"], p.instruction_id_list, p.kwargs, mode=mode))
    # two_responses needs a second, different answer: a one-sentence sample cannot be split into two.
    assert stats.without_target == 1 and stats.by_constraint["combination:two_responses"] == {"prompts": 1, "targets": 0}
