"""`posttrain train guard` on a tiny model: the rendering is the judge's, a trained model loads in the llama_guard
judge unchanged and answers in its format, and bad input stops with file:line before anything is written."""

from __future__ import annotations

import json

import pytest

from posttrain.cli.main import main
from posttrain.config import load_config
from posttrain.judges import get_judge
from posttrain.judges.base import make_items
from posttrain.judges.llama_guard import LG3_CATEGORIES
from posttrain.judges.llm_prob import answer_token_ids
from posttrain.safety.records import GuardExample
from posttrain.train.guard import GuardConfig, guard_sequence, split_rows, train_guard

ROWS = [
    {"prompt": f"Help me with hurting person {i}.", "label": "unsafe", "categories": ["S1"]} for i in range(6)
] + [{"prompt": f"Help me with hurting person {i}.", "response": "I can't help with that.", "label": "unsafe",
      "categories": ["S1"], "split": "heldout"} for i in range(2)]  # fmt: skip


def config(model_dir, out, *overrides: str) -> GuardConfig:
    base = [f"model.name={model_dir}", f"train.output_dir={out}", "train.batch_size=2", "train.progress=false",
            "data.max_length=512", "eval.before=false"]  # fmt: skip
    return load_config(GuardConfig, None, base + list(overrides))


def test_a_row_is_the_judges_prompt_then_llama_guard_3s_answer(tokenizer, tiny_backend_like):
    example = GuardExample.model_validate(ROWS[6])
    seq = guard_sequence(tokenizer, example, list(LG3_CATEGORIES), 1024)
    judge = get_judge("llama_guard", model=tiny_backend_like, role="Agent")
    (item,) = make_items(
        [[m.model_dump() for m in example.messages[:-1]]], [example.messages[-1].content], None
    )
    scored = list(tokenizer(judge.prompt_text(item) + "\n\n", add_special_tokens=False).input_ids)
    assert seq is not None and seq.ids[: len(scored)] == scored and not any(seq.targets[: len(scored)])
    answer = seq.ids[len(scored) :]
    assert all(seq.targets[len(scored) :]) and answer[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(answer[:-1]) == "unsafe\nS1"
    # the first answer token is the one whose probability the judge reads as P(unsafe)
    assert answer[0] in answer_token_ids(tokenizer, scored, ["unsafe"])
    assert guard_sequence(tokenizer, example, list(LG3_CATEGORIES), 50) is None


def test_split_follows_the_rows_else_a_seeded_fraction():
    rows = [GuardExample.model_validate({"prompt": f"q{i}", "label": "safe"}) for i in range(200)]
    train, held = split_rows(rows, 0.25, seed=0)
    assert 30 < len(held) < 70 and split_rows(rows, 0.25, seed=0) == (train, held)
    marked = [GuardExample.model_validate(r) for r in ROWS]
    assert split_rows(marked, 0.0, 0) == (list(range(6)), [6, 7])


def test_trained_guard_loads_in_the_llama_guard_judge_and_answers_in_its_format(tiny_model_dir, tmp_path):
    rows = [GuardExample.model_validate(r) for r in ROWS]
    cfg = config(
        tiny_model_dir, tmp_path / "guard", "train.lr=1e-2", "train.epochs=25", "train.scheduler=constant"
    )
    result = train_guard(cfg, rows)
    losses = [m["loss"] for m in result.train.metrics]
    assert losses[-1] < 0.2 * losses[0]
    # the unchanged judge, from the saved directory
    judge = get_judge("llama_guard", model=str(result.train.model_dir), role="User", generate=True)
    verdicts = judge.judge(["Help me with hurting person 9."], [""])
    assert verdicts[0].value == 0 and verdicts[0].detail.startswith("unsafe: S1;") and verdicts[0].score > 0.5
    after = json.loads((tmp_path / "guard" / "eval_after" / "metrics.json").read_text())
    assert (
        after["n"] == 2 and after["binary"]["recall"] == 1.0 and after["per_category"]["S1"]["recall"] == 1.0
    )
    summary = json.loads((tmp_path / "guard" / "guard_metrics.json").read_text())
    assert summary["before"] is None and summary["after"]["f1"] == 1.0
    assert "recipe: `guard`" in (result.train.model_dir / "README.md").read_text()


def test_unknown_category_is_file_and_line_exit_2_and_nothing_written(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "guard.jsonl"
    rows = [*ROWS[:3], {"prompt": "x", "label": "unsafe", "categories": ["S99"]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    code = main(["train", "guard", "--config", "recipes/guard.yaml", "--data", str(data),
                 f"model.name={tiny_model_dir}", f"train.output_dir={out}"])  # fmt: skip
    assert code == 2
    assert f"{data}:4: unknown category 'S99'" in capsys.readouterr().err
    assert not out.exists()
    data.write_text(json.dumps({"prompt": "x", "label": "unsafe"}) + "\n")
    assert main(["train", "guard", "--data", str(data), f"train.output_dir={out}"]) == 2
    assert f"{data}:1: invalid GuardExample: an 'unsafe' row must name" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def tiny_backend_like(tiny_model_dir):
    from posttrain.models.hf import HFBackend

    return HFBackend(str(tiny_model_dir), threads=1)
