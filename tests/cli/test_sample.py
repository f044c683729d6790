"""`posttrain sample` end to end on the embedded model: rows, determinism, resume after a crash, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from posttrain.records import Prompt, Sample, read_records, write_records

pytestmark = pytest.mark.model

PROMPTS = [
    Prompt(prompt="Write a haiku about rain."),
    Prompt(prompt="What is the capital of France?"),
    Prompt(prompt=[{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue"}]),
]
OPTIONS = ["--n", "2", "--max-new-tokens", "8", "--temperature", "0.8", "--batch-size", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def cli() -> Callable[[list[str]], int]:
    from posttrain.cli import main as cli_main

    return cli_main.main


@pytest.fixture(scope="module")
def prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    write_records(path, PROMPTS)
    return path


@pytest.fixture(scope="module")
def reference(
    cli: Callable[[list[str]], int], prompts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("reference") / "samples.jsonl"
    assert cli(["sample", "--prompts", str(prompts), "--out", str(out), *OPTIONS]) == 0
    return out


def test_n_samples_per_prompt_with_provenance(reference: Path) -> None:
    rows = read_records(reference, Sample)
    assert [(r.prompt_id, r.index) for r in rows] == [(p.id, i) for p in PROMPTS for i in range(2)]
    assert all(r.model == "embedded" and r.sampling["max_new_tokens"] == 8 for r in rows)
    assert all(r.finish_reason in ("stop", "length") and 0 < (r.completion_tokens or 0) <= 8 for r in rows)
    assert rows[0].completion != rows[1].completion  # two samples, two seeds
    assert not reference.with_name(reference.name + ".partial").exists()


def test_a_second_run_gives_the_same_file(
    cli: Callable[[list[str]], int], prompts: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again.jsonl"
    assert cli(["sample", "--prompts", str(prompts), "--out", str(out), *OPTIONS]) == 0
    assert out.read_bytes() == reference.read_bytes()


def test_a_crashed_run_resumes_to_the_same_file(
    cli: Callable[[list[str]], int], prompts: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumed.jsonl"
    lines = reference.read_bytes().splitlines(keepends=True)
    # killed mid-batch: three whole rows (batch 1 is half done) and a torn fourth
    out.with_name(out.name + ".partial").write_bytes(b"".join(lines[:3]) + lines[3][:20])
    assert cli(["sample", "--prompts", str(prompts), "--out", str(out), *OPTIONS]) == 0
    assert out.read_bytes() == reference.read_bytes()


def test_a_missing_prompts_file_exits_2(
    cli: Callable[[list[str]], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert cli(["sample", "--prompts", str(missing), "--out", str(tmp_path / "s.jsonl")]) == 2
    assert f"error: {missing}: file not found" in capsys.readouterr().err


def test_an_unknown_model_exits_2_and_writes_nothing(
    cli: Callable[[list[str]], int], prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.jsonl"
    assert cli(["sample", "--prompts", str(prompts), "--out", str(out), "--model", "no-such-model"]) == 2
    assert "error: unknown model 'no-such-model'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_too_long_prompt_stops_with_nothing_at_out(
    cli: Callable[[list[str]], int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = tmp_path / "prompts.jsonl"
    write_records(prompts, [PROMPTS[1], Prompt(prompt="word " * 9000)])
    out = tmp_path / "s.jsonl"
    args = ["sample", "--prompts", str(prompts), "--out", str(out), "--n", "1", "--max-new-tokens", "4"]
    assert cli([*args, "--batch-size", "1", "--threads", "1"]) == 2
    assert "exceeds the model's context" in capsys.readouterr().err
    assert not out.exists()
    partial = out.with_name(out.name + ".partial").read_text().splitlines()
    assert [json.loads(line)["prompt_id"] for line in partial] == [PROMPTS[1].id]  # kept for the resume


def test_bad_sampling_options_exit_2(
    cli: Callable[[list[str]], int], prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["sample", "--prompts", str(prompts), "--out", str(tmp_path / "s.jsonl"), "--top-p", "0"]) == 2
    assert "bad sampling option: top_p must be in (0, 1]" in capsys.readouterr().err


def test_resuming_with_other_options_is_refused(
    cli: Callable[[list[str]], int],
    prompts: Path,
    reference: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "s.jsonl"
    out.with_name(out.name + ".partial").write_bytes(reference.read_bytes().splitlines(keepends=True)[0])
    other = [a if a != "0.8" else "0.5" for a in OPTIONS]  # another temperature
    assert cli(["sample", "--prompts", str(prompts), "--out", str(out), *other]) == 2
    assert "holds samples of a run with other options" in capsys.readouterr().err
    assert not out.exists()


def test_sampling_through_an_openai_compatible_server(
    cli: Callable[[list[str]], int], prompts: Path, tmp_path: Path
) -> None:
    import threading

    from posttrain.models import SamplingParams, load_backend
    from posttrain.models.serve import make_server

    local = load_backend("embedded", threads=1)
    server = make_server(local, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out, spec = tmp_path / "s.jsonl", f"openai:{server.url}#embedded"
        args = ["--n", "1", "--max-new-tokens", "8", "--temperature", "0", "--concurrency", "2"]
        assert cli(["sample", "--prompts", str(prompts), "--out", str(out), "--model", spec, *args]) == 0
    finally:
        server.shutdown()
        server.server_close()
    rows = read_records(out, Sample)
    greedy = local.generate([p.prompt for p in PROMPTS], 1, SamplingParams(max_new_tokens=8, temperature=0.0))
    assert [r.completion for r in rows] == [row[0].text for row in greedy]
    assert all(r.model == spec for r in rows)
