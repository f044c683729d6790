"""`posttrain judge` end to end: verdicts + summary table, --config, resume, bad input exits 2 with no output."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.cli import main as cli_main
from posttrain.records import Prompt, Sample, Verdict, read_records, write_records

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def files(tmp_path):
    prompts = [
        Prompt(prompt="Answer without commas.", instruction_id_list=["punctuation:no_comma"], kwargs=[{}]),
        Prompt(prompt="What is 6*7?", gold="42", task="math"),
    ]
    samples = [
        Sample(prompt_id=prompts[0].id, prompt=prompts[0].prompt, completion="Sure here it is"),
        Sample(prompt_id=prompts[0].id, prompt=prompts[0].prompt, completion="Sure, here", index=1),
        Sample(prompt_id=prompts[1].id, prompt=prompts[1].prompt, completion="The final answer is 42."),
        Sample(prompt_id=prompts[1].id, prompt=prompts[1].prompt, completion="I can't help with that.", index=1),
    ]
    write_records(tmp_path / "prompts.jsonl", prompts)
    write_records(tmp_path / "samples.jsonl", samples)
    return tmp_path


def test_judge_writes_verdicts_and_a_summary(files, capsys):
    out = files / "verdicts.jsonl"
    code = cli_main.main(["judge", "--samples", str(files / "samples.jsonl"), "--prompts", str(files / "prompts.jsonl"),
                          "--config", str(REPO / "recipes" / "judges.yaml"), "--out", str(out)])  # fmt: skip
    assert code == 0
    verdicts = read_records(out, Verdict)
    by = {(v.judge, v.sample_id): v.value for v in verdicts}
    assert sorted(v.judge for v in verdicts) == ["ifeval", "ifeval", "math", "math", "refusal", "refusal"]
    assert sorted(by.values()) == [0, 0, 1, 1, 1, 1]  # "Sure, here" has a comma; the refusal gets no math credit
    printed = capsys.readouterr()
    assert "6 verdicts (6 new, 0 resumed)" in printed.err and "AND (mixture)" in printed.out

    # rerun: nothing new, the same file
    before = out.read_text()
    assert cli_main.main(["judge", "--samples", str(files / "samples.jsonl"), "--prompts", str(files / "prompts.jsonl"),
                          "--config", str(REPO / "recipes" / "judges.yaml"), "--out", str(out)]) == 0  # fmt: skip
    assert out.read_text() == before
    assert "6 verdicts (0 new, 6 resumed)" in capsys.readouterr().err


def test_judges_flag_and_overrides(files):
    out = files / "v.jsonl"
    args = ["judge", "--samples", str(files / "samples.jsonl"), "--prompts", str(files / "prompts.jsonl"),
            "--config", str(REPO / "recipes" / "judges.yaml"), "--judges", "math,refusal", "--out", str(out),
            "judges.math.strict_format=true", "--workers", "1"]  # fmt: skip
    assert cli_main.main(args) == 0
    verdicts = read_records(out, Verdict)
    assert sorted(v.judge for v in verdicts) == ["math", "math", "refusal", "refusal"]  # tasks pick math or refusal
    assert {v.value for v in verdicts if v.judge == "math"} == {0, 1}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--judges", "ifevl"], "unknown judge 'ifevl'; did you mean 'ifeval'?"),
        (["--judges", "math", "judges.math.strict=true"], "has no option 'strict'"),
        (["--judges", "ifeval", "--no-prompts"], "pass --prompts"),
        (["--judges", "refusal", "--workers", "0"], "--workers must be at least 1"),
        (["--judges", "reward_model"], "judge 'reward_model' needs the option 'model'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(files, capsys, extra, message):
    out = files / "v.jsonl"
    args = ["judge", "--samples", str(files / "samples.jsonl"), "--out", str(out)]
    if "--no-prompts" in extra:
        extra = [e for e in extra if e != "--no-prompts"]
    else:
        args += ["--prompts", str(files / "prompts.jsonl")]
    assert cli_main.main(args + extra) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not out.exists() and not out.with_name("v.jsonl.partial").exists()


def test_malformed_samples_file_reports_file_and_line(files, capsys):
    bad = files / "bad.jsonl"
    bad.write_text((files / "samples.jsonl").read_text() + "{not json}\n")
    assert cli_main.main(["judge", "--samples", str(bad), "--judges", "refusal", "--out", str(files / "v.jsonl")]) == 2
    assert f"{bad}:5: malformed JSON" in capsys.readouterr().err
