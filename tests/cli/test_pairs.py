"""`posttrain pairs`: RS from judged samples, MCTS on the embedded model, and the output's use by datasets + TRL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.records import Pair, Prompt, Sample, Verdict, read_records, write_records


def _judged(tmp_path: Path) -> tuple[Path, Path, Path]:
    prompts = [
        Prompt(prompt=f"Write about {topic} in lowercase.", instruction_id_list=["change_case:english_lowercase"],
               kwargs=[{}], difficulty=1.0)
        for topic in ("rivers", "bread", "snow")
    ]  # fmt: skip
    samples, verdicts = [], []
    for p in prompts:
        for i, text in enumerate(["all lowercase here, as asked.", "Some Capitals Here.", "MORE CAPITALS."]):
            s = Sample(prompt_id=p.id, prompt=p.prompt, completion=f"{text} ({p.id[:4]})", model="m", index=i)
            samples.append(s)
            verdicts.append(Verdict(sample_id=s.id, prompt_id=p.id, judge="ifeval", value=1 if i == 0 else 0,
                                    score=1.0 if i == 0 else 0.0))  # fmt: skip
    paths = tmp_path / "prompts.jsonl", tmp_path / "samples.jsonl", tmp_path / "verdicts.jsonl"
    for path, rows in zip(paths, (prompts, samples, verdicts), strict=True):
        write_records(path, rows)
    return paths


def test_rs_pairs_prefer_the_satisfied_sample_and_write_stats(tmp_path: Path):
    prompts, samples, verdicts = _judged(tmp_path)
    out = tmp_path / "pairs.jsonl"
    args = ["pairs", "--samples", str(samples), "--verdicts", str(verdicts), "--prompts", str(prompts),
            "--contrast", "high", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    pairs = read_records(out, Pair)
    assert len(pairs) == 3
    assert all(p.chosen.startswith("all lowercase") and p.chosen_satisfied and not p.rejected_satisfied for p in pairs)
    assert all(p.difficulty == 1.0 for p in pairs)
    assert json.loads(out.with_suffix(".stats.json").read_text())["pairs"] == 3


def test_bad_method_or_missing_inputs_exit_2_without_output(tmp_path: Path, capsys):
    prompts, samples, verdicts = _judged(tmp_path)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", "--method", "beam", "--out", str(out)]) == 2
    assert "unknown pair method 'beam'" in capsys.readouterr().err
    assert main(["pairs", "--samples", str(samples), "--out", str(out)]) == 2
    assert "needs --samples and --verdicts" in capsys.readouterr().err
    assert main(["pairs", "--method", "mcts", "--out", str(out)]) == 2
    assert "needs --prompts" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("flag", "root_pairs"), [([], False), (["--root-pairs"], True)])
def test_mcts_pairs_fork_below_the_root_unless_root_pairs_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], root_pairs: bool
):
    searched = []
    monkeypatch.setattr("posttrain.cli.pairs._mcts", lambda prompts, out, model, config, mode: searched.append(config))
    prompts, _, _ = _judged(tmp_path)
    assert main(["pairs", "--method", "mcts", "--prompts", str(prompts), *flag, "--out", str(tmp_path / "p.jsonl")]) == 0
    assert [config.root_pairs for config in searched] == [root_pairs]


def test_repair_pairs_lowercase_the_violating_samples(tmp_path: Path):
    prompts, samples, _ = _judged(tmp_path)
    # Long enough for language detection, which IFEval's lowercase check also runs.
    longer = [s.model_copy(update={"completion": s.completion + " this is what we have to say about it, and "
                                   "there is nothing more to add to this answer."})  # fmt: skip
              for s in read_records(samples, Sample)]  # fmt: skip
    write_records(samples, longer)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", "--method", "repair", "--prompts", str(prompts), "--samples", str(samples),
                 "--out", str(out)]) == 0  # fmt: skip
    pairs = read_records(out, Pair)
    assert len(pairs) == 6  # two violating samples per prompt, each lowercased
    assert all(p.chosen == p.rejected.lower() and p.method == "repair" for p in pairs)
    stats = json.loads(out.with_suffix(".stats.json").read_text())
    assert (stats["pairs"], stats["already_satisfied"]) == (6, 3)


def test_repair_needs_prompts_that_cover_the_samples(tmp_path: Path, capsys):
    prompts, samples, _ = _judged(tmp_path)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", "--method", "repair", "--samples", str(samples), "--out", str(out)]) == 2
    assert "needs --prompts" in capsys.readouterr().err
    write_records(prompts, read_records(prompts, Prompt)[:1])
    assert main(["pairs", "--method", "repair", "--prompts", str(prompts), "--samples", str(samples),
                 "--out", str(out)]) == 2  # fmt: skip
    assert "2 samples' prompt_id not in --prompts" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def fresh_accelerate_state():
    """TRL's trainer sets accelerate's process-wide state; later trainers in this worker need it cleared."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def test_pairs_load_with_datasets_and_train_with_trl_dpo_unchanged(tmp_path: Path, fresh_accelerate_state):
    trl = pytest.importorskip("trl")
    from datasets import load_dataset
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir
    from tests.train.conftest import tiny_llama

    prompts, samples, verdicts = _judged(tmp_path)
    out = tmp_path / "pairs.jsonl"
    assert main(["pairs", "--samples", str(samples), "--verdicts", str(verdicts), "--out", str(out)]) == 0
    dataset = load_dataset("json", data_files=str(out), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = trl.DPOConfig(
        output_dir=str(tmp_path / "trl"), max_steps=2, per_device_train_batch_size=2, report_to=[],
        logging_steps=1, save_strategy="no", use_cpu=True, max_length=128,
    )  # fmt: skip
    model_dir = tmp_path / "tiny"  # TRL builds its reference copy from the model's path
    tiny_llama(len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    trainer = trl.DPOTrainer(model=str(model_dir), args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # trained two steps, no NaN


@pytest.mark.model
def test_mcts_pairs_on_the_embedded_model_share_a_prefix_and_resume(tmp_path: Path):
    prompts = [
        Prompt(prompt="List three fruits. Do not use any commas.", instruction_id_list=["punctuation:no_comma"],
               kwargs=[{}]),
        Prompt(prompt="Describe the sea in lowercase letters only.",
               instruction_id_list=["change_case:english_lowercase"], kwargs=[{}]),
    ]  # fmt: skip
    write_records(tmp_path / "prompts.jsonl", prompts)
    # --root-pairs: a budget this small rarely forks below the root on this model (none in 12 searches of such
    # prompts, seeds 0-3), and this test is about the command and resuming; the default is tested in tests/pairs.
    args = ["pairs", "--method", "mcts", "--prompts", str(tmp_path / "prompts.jsonl"), "--simulations", "3",
            "--branching", "2", "--max-depth", "2", "--rollout-max-tokens", "32", "--seed", "0",
            "--root-pairs"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    stats = json.loads((tmp_path / "a.stats.json").read_text())
    assert stats["prompts"] == 2 and stats["generated_tokens"] > 0
    pairs = read_records(tmp_path / "a.jsonl", Pair)
    assert pairs and len(pairs) == stats["pairs"]  # this budget and seed give a pair (else the test is vacuous)
    for pair in pairs:
        assert pair.method == "mcts" and pair.chosen_score > pair.rejected_score
        shared = pair.shared_prefix_chars  # 0 for a pair forked at the root
        assert pair.chosen[:shared] == pair.rejected[:shared]
    # a crash after the first prompt, then a rerun: that prompt is skipped, the second searched again, and the
    # file is the same as the uninterrupted run's (the search is deterministic for a seed)
    first = [line for line in (tmp_path / "a.jsonl").read_text().splitlines() if prompts[0].id in line]
    (tmp_path / "b.jsonl.partial").write_text("".join(line + "\n" for line in first))
    assert main([*args, "--out", str(tmp_path / "b.jsonl")]) == 0
    assert json.loads((tmp_path / "b.stats.json").read_text())["prompts"] == (1 if first else 2)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
