"""The SFT recipe on a tiny model: prompt/completion and messages rows, loss going down, bad rows, the model card."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import yaml

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.records import parse_row
from posttrain.train.sft import SFTConfig, SFTExample, train_sft


def config(model_dir, out, *overrides: str) -> SFTConfig:
    base = [f"model.name={model_dir}", f"train.output_dir={out}", "train.batch_size=2", "train.progress=false"]
    return load_config(SFTConfig, None, base + list(overrides))


def test_sample_rows_and_messages_rows_are_accepted():
    sample = SFTExample.model_validate({"prompt_id": "p1", "prompt": "Hi", "completion": "hello", "model": "m"})
    assert sample.prompt_and_response() == ("Hi", "hello")
    chat = SFTExample.model_validate(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "hello"},
            ]
        }
    )
    prompt, response = chat.prompt_and_response()
    assert [m.role for m in prompt] == ["system", "user"] and [m.content for m in response] == ["hello"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"prompt": "Hi"}, "give 'prompt' and 'completion', or 'messages'"),
        ({"messages": [{"role": "user", "content": "Hi"}]}, "must end with an assistant message"),
    ],
)
def test_bad_rows(row, message):
    with pytest.raises(InputError, match=message):
        parse_row(row, SFTExample, "sft.jsonl", 3)


def test_loss_goes_down_on_a_memorised_answer(tiny_model_dir, tmp_path):
    examples = [SFTExample(prompt=f"Say the word {i}.", completion="banana banana banana") for i in range(4)]
    result = train_sft(config(tiny_model_dir, tmp_path / "run", "train.lr=3e-2", "train.epochs=4", "train.scheduler=constant"), examples)
    losses = [m["loss"] for m in result.metrics]
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    assert (result.model_dir / "model.safetensors").exists()


def test_bf16_autocast_trains_fp32_weights_on_the_same_loss_curve(tiny_model_dir, tmp_path):
    examples = [SFTExample(prompt=f"Say the word {i}.", completion="banana banana banana") for i in range(4)]
    curves = {}
    for precision in ("no", "bf16"):
        cfg = config(tiny_model_dir, tmp_path / precision, "train.lr=3e-2", "train.epochs=2",
                     f"train.mixed_precision={precision}")  # fmt: skip
        result = train_sft(cfg, examples)
        curves[precision] = [m["loss"] for m in result.metrics]
    import torch
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float32 for t in load_file(tmp_path / "bf16" / "model" / "model.safetensors").values())
    # bf16 matmuls round to 8 bits of mantissa: the first loss agrees to ~1%, and training still moves the same way.
    assert abs(curves["bf16"][0] - curves["no"][0]) < 0.02 * curves["no"][0]
    assert curves["bf16"][-1] < curves["bf16"][0] and curves["bf16"] != curves["no"]


def test_empty_completion_is_an_error_with_location(tiny_model_dir, tmp_path):
    from posttrain.train.data import Source

    examples = [SFTExample(prompt="Hi", completion="hello"), SFTExample(prompt="Hi", completion=" ")]
    with pytest.raises(InputError, match=r"sft.jsonl:5: the response is empty"):
        train_sft(config(tiny_model_dir, tmp_path / "run"), examples, Source("sft.jsonl", [2, 5]))
    assert not (tmp_path / "run").exists()


def test_too_few_examples_for_one_step_stop_before_anything_is_written(tiny_model_dir, tmp_path):
    examples = [SFTExample(prompt="Hi", completion="hello")]
    with pytest.raises(InputError, match="1 examples do not fill one optimizer step"):
        train_sft(config(tiny_model_dir, tmp_path / "run", "train.grad_accum=2"), examples)
    assert not (tmp_path / "run").exists()


def test_the_model_directory_has_a_model_card_and_loads_with_plain_transformers(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from posttrain.train.data import Source

    examples = [SFTExample(prompt=f"Say the word {i}.", completion="banana") for i in range(4)]
    cfg = config(tiny_model_dir, tmp_path / "run")
    result = train_sft(cfg, examples, Source("data/sft.jsonl", [1, 2, 3, 4]))

    card = (result.model_dir / "README.md").read_text()
    front_matter, body = card.split("---\n")[1:3]
    assert yaml.safe_load(front_matter) == {"library_name": "transformers", "tags": ["posttrain", "sft"]}
    fingerprint = json.loads((tmp_path / "run" / "run.json").read_text())["fingerprint"]
    final_loss = result.metrics[-1]["loss"]
    for fact in [
        f"- base model: `{tiny_model_dir}`",
        "- recipe: `sft`",
        "- data: 4 examples from `data/sft.jsonl`",
        f"- run fingerprint: `{fingerprint}`",
        f"- training: 2 optimizer steps, {result.tokens} tokens, final loss {final_loss:.4f}",
    ]:
        assert fact in body
    assert yaml.safe_load(body.split("```yaml\n")[1].split("```")[0]) == asdict(cfg)

    model, info = AutoModelForCausalLM.from_pretrained(result.model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert AutoTokenizer.from_pretrained(result.model_dir).chat_template is not None
