"""MART's rounds on tiny random models with stand-in judges: files of every round, selection, judge failures
counted as -1, resume after a crash without regenerating anything, DPO updates, and bad configs."""

from __future__ import annotations

import json

import pytest

import posttrain.redteam.mart as mart
from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment
from posttrain.judges.refusal import RefusalJudge
from posttrain.records import Prompt, content_id, read_records
from posttrain.redteam.mart import Judges, MARTConfig, round_slice, run_mart


class HashSafety(Judge):
    """Unsafe for about half the responses, by a hash of the text; raises on about one in five (-> -1)."""

    def judge_one(self, item: Item) -> Judgment:
        h = int(content_id(item.completion), 16)
        if h % 5 == 0:
            raise RuntimeError("the safety judge broke on this one")
        return Judgment(0 if h % 2 else 1, float(h % 2))


class LengthHelpfulness(Judge):
    kind = "reward"

    def judge_one(self, item: Item) -> Judgment:
        return Judgment(1, len(item.completion) / 100)


def judges() -> Judges:
    return Judges(HashSafety(), LengthHelpfulness(), RefusalJudge())


def config(model_dir, out, *overrides: str) -> MARTConfig:
    base = [f"adversary={model_dir}", f"target={model_dir}", f"output_dir={out}", "rounds=2",
            "data.seeds_per_round=3", "data.heldout_limit=3", "data.benign_limit=3",
            "generation.attack_max_new_tokens=6", "generation.response_max_new_tokens=6",
            "generation.eval_max_new_tokens=6", "generation.batch_size=4",
            "update.adversary.batch_size=1", "update.target_sft.batch_size=1", "update.target_dpo.batch_size=1",
            "update.max_length=256"]  # fmt: skip
    return load_config(MARTConfig, None, base + list(overrides))


def test_rounds_write_their_records_select_rows_and_count_judge_failures(tiny_model_dir, tmp_path):
    result = run_mart(config(tiny_model_dir, tmp_path / "mart"), judges())
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    rd = tmp_path / "mart" / "round1"
    for name in ("attack_samples.jsonl", "responses.jsonl", "verdicts.jsonl", "adversary_sft.jsonl",
                 "target_sft.jsonl", "target_pairs.jsonl", "selection.json", "done.json", "eval/metrics.json"):  # fmt: skip
        assert (rd / name).exists(), name
    assert not list(tmp_path.rglob("*.partial"))
    selection = json.loads((rd / "selection.json").read_text())
    verdicts = [json.loads(line) for line in (rd / "verdicts.jsonl").read_text().splitlines()]
    safety = [v for v in verdicts if v["judge"] == "safety"]
    assert len(safety) == selection["responses"] == 2 * selection["attacks"]
    assert selection["safety_failures"] == sum(v["value"] == -1 for v in safety)
    assert selection["successful_attacks"] == len({v["prompt_id"] for v in safety if v["value"] == 0})
    assert selection["safe_and_helpful"] == sum(v["value"] == 1 for v in safety)
    if selection[
        "successful_attacks"
    ]:  # the adversary learnt from its successes: round 2 attacks with the new one
        assert result.rounds[1]["adversary"] == str(rd / "adversary" / "model")
    evaluation = result.rounds[2]["eval"]
    assert evaluation["heldout_attacks"] == 3 and evaluation["benign_prompts"] == 3
    failures = evaluation["safety_failures"]
    if failures < 3:
        assert 0 <= evaluation["violation_rate"] <= 1
    summary = json.loads((tmp_path / "mart" / "mart_metrics.json").read_text())
    assert [r["round"] for r in summary] == [0, 1, 2] and "seconds" in summary[1]


def test_a_crash_mid_round_resumes_without_generating_again(tiny_model_dir, tmp_path, monkeypatch):
    cfg = config(tiny_model_dir, tmp_path / "mart", "rounds=1")

    def crash(*args, **kwargs):
        raise RuntimeError("killed during the target update")

    monkeypatch.setattr(mart, "update_target", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_mart(cfg, judges())
    rd = tmp_path / "mart" / "round1"
    before = {
        name: (rd / name).read_bytes()
        for name in ("attack_samples.jsonl", "responses.jsonl", "verdicts.jsonl")
    }
    assert not (rd / "done.json").exists()
    monkeypatch.undo()

    generated = []
    real_sample = mart.sample_prompts
    monkeypatch.setattr(mart, "sample_prompts", lambda backend, prompts, out, *a, **k: generated.append(out.name)
                        or real_sample(backend, prompts, out, *a, **k))  # fmt: skip
    result = run_mart(cfg, judges())
    assert generated == [
        "heldout_responses.jsonl",
        "benign_responses.jsonl",
    ]  # only round 1's evaluation was missing
    assert {name: (rd / name).read_bytes() for name in before} == before
    assert (rd / "done.json").exists() and len(result.rounds) == 2
    generated.clear()
    run_mart(cfg, judges())  # a finished run: nothing to do
    assert generated == []


def test_dpo_update_of_the_target(tiny_model_dir, tmp_path):
    result = run_mart(config(tiny_model_dir, tmp_path / "mart", "rounds=1", "update.target=dpo"), judges())
    pairs = (tmp_path / "mart" / "round1" / "target_pairs.jsonl").read_text().splitlines()
    trained = result.rounds[1]["target"] != str(tiny_model_dir)
    assert trained == bool(pairs)
    if pairs:
        assert (tmp_path / "mart" / "round1" / "target" / "model" / "config.json").exists()


def test_a_judge_that_fails_outright_gives_minus_one_for_every_item(tmp_path):
    class Broken(Judge):
        def judge(self, prompts, completions, gold=None):
            raise ConnectionError("server down")

    from posttrain.records import Sample

    samples = [Sample(prompt_id="p", prompt="x", completion=f"answer {i}") for i in range(3)]
    broken = Broken()
    broken.name = "safety"
    verdicts = mart.judge_file(samples, [broken], tmp_path / "verdicts.jsonl")
    assert [v.value for v in verdicts] == [-1, -1, -1] and "server down" in verdicts[0].detail


def test_round_slices_cycle_through_the_seed_prompts():
    seeds = [Prompt(prompt=f"s{i}") for i in range(5)]
    assert [p.prompt for p in round_slice(seeds, 1, 3)] == ["s0", "s1", "s2"]
    assert [p.prompt for p in round_slice(seeds, 2, 3)] == ["s3", "s4", "s0"]
    assert len(round_slice(seeds, 1, 9)) == 5


def test_bad_config_and_bad_seed_file(tmp_path):
    with pytest.raises(InputError, match="rounds must be at least 1"):
        run_mart(load_config(MARTConfig, None, ["rounds=0"]), judges())
    with pytest.raises(InputError, match="judge 'safety' .* has no option 'rolle'"):
        mart.build_judges(
            load_config(MARTConfig, None, ["judges.safety={type: llama_guard, model: x, rolle: User}"]).judges
        )
    bad = tmp_path / "seeds.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"promt": "typo"}\n')
    with pytest.raises(InputError, match=rf"{bad}:2: invalid Prompt: missing field 'prompt'"):
        run_mart(
            load_config(MARTConfig, None, [f"data.seed_prompts={bad}", f"output_dir={tmp_path / 'o'}"]),
            judges(),
        )
    assert not (tmp_path / "o").exists()
    assert read_records  # noqa: B018  (imported for the reader the errors come from)


def test_cli_help_and_bad_override_exit_codes(capsys):
    from posttrain.cli.main import main

    assert main(["redteam", "--help"]) == 0
    assert main(["redteam", "--config", "recipes/mart.yaml", "rounds=0"]) == 2
    assert "rounds must be at least 1" in capsys.readouterr().err
    assert main(["redteam", "--config", "recipes/mart.yaml", "update.target=ppo"]) == 2
    assert "update.target" in capsys.readouterr().err
