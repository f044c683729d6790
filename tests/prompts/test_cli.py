from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.cli.main import main
from posttrain.records import Prompt, read_records


def test_synth_writes_prompts_and_stats(tmp_path: Path, capsys):
    out = tmp_path / "prompts.jsonl"
    code = main(["prompts", "synth", "--n", "60", "--constraints", "1-5", "--seed", "1", "--out", str(out)])
    assert code == 0
    records = read_records(out, Prompt)
    assert len(records) == 60 and all(r.source == "synth" for r in records)
    stats = json.loads((tmp_path / "prompts.stats.json").read_text())
    assert stats["prompts"] == 60
    assert sum(stats["constraints_per_prompt"].values()) == 60
    assert stats["constraint_types"] and stats["combinations"] and stats["length_words"]["histogram"]
    printed = capsys.readouterr().out
    assert "constraint types" in printed and "wrote 60 prompts" in printed


def test_synth_is_reproducible(tmp_path: Path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (a, b):
        assert main(["prompts", "synth", "--n", "30", "--seed", "5", "--out", str(out)]) == 0
    assert a.read_text() == b.read_text()


def test_config_file_and_overrides(tmp_path: Path):
    config = tmp_path / "synth.yaml"
    config.write_text("n: 10\nconstraints: '2'\nids: [punctuation:no_comma, detectable_format:title, keywords:existence]\n")
    out = tmp_path / "p.jsonl"
    assert main(["prompts", "synth", "--config", str(config), "--set", "seed=4", "--out", str(out)]) == 0
    records = read_records(out, Prompt)
    assert len(records) == 10 and all(len(r.instruction_id_list) == 2 for r in records)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posttrain", *args], capture_output=True, text=True)


def test_bad_input_exits_2_without_output(tmp_path: Path):
    out = tmp_path / "p.jsonl"
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    cases = [
        (["--ids", "punctuation:no_coma"], "unknown constraint id"),
        (["--constraints", "5-2"], "empty"),
        (["--ids", "detectable_format:json_format,startend:quotation", "--constraints", "2"], "at most 1"),
        (["--seed-tasks", str(empty)], "no tasks"),
        (["--set", "bogus=1"], "unknown config key"),
    ]
    for extra, message in cases:
        proc = _run("prompts", "synth", "--n", "5", "--out", str(out), *extra)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists() and not list(tmp_path.glob("p.*"))


def test_stats_command_on_ifeval(ifeval_input: Path, tmp_path: Path, capsys):
    out = tmp_path / "ifeval.stats.json"
    assert main(["prompts", "stats", str(ifeval_input), "--out", str(out)]) == 0
    stats = json.loads(out.read_text())
    assert stats["prompts"] > 500
    assert stats["constraint_types"]["punctuation:no_comma"] > 0
    assert 0 < stats["difficulty"]["mean"] < 1


def test_verify_finds_a_witness_for_every_prompt(tmp_path: Path):
    out = tmp_path / "p.jsonl"
    args = ["prompts", "synth", "--n", "150", "--constraints", "3-5", "--seed", "2", "--verify", "--out", str(out)]
    assert main(args) == 0
    stats = json.loads((tmp_path / "p.stats.json").read_text())
    assert stats["rejected"]["unverifiable"] == 0 and stats["prompts"] == 150


@pytest.mark.model
def test_rewrite_through_the_embedded_model_keeps_every_prompt_verifiable(tmp_path: Path):
    from posttrain.constraints import get_constraint

    out = tmp_path / "rewritten.jsonl"
    args = ["prompts", "synth", "--n", "4", "--constraints", "1-2", "--seed", "3", "--rewrite", "embedded",
            "--rewrite-max-new-tokens", "64", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    records = read_records(out, Prompt)
    stats = json.loads((tmp_path / "rewritten.stats.json").read_text())
    assert len(records) == 4 and set(stats["rewrite"]) == {"rewritten", "fallback_to_template"}
    assert stats["rewrite"]["rewritten"] + stats["rewrite"]["fallback_to_template"] == 4
    for r in records:  # rewritten or not, the constraints still travel with the prompt and validate
        assert r.instruction_id_list and r.prompt.strip()
        for cid, kwargs in zip(r.instruction_id_list, r.kwargs, strict=True):
            get_constraint(cid).validate(kwargs)
