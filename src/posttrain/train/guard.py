"""A Llama Guard 3-style safety classifier, fine-tuned by posttrain's SFT loop, that the `llama_guard` judge loads
unchanged.

    result = train_guard(load_config(GuardConfig, "recipes/guard.yaml"), examples)

1. Rows are `GuardExample`s (`safety/records.py`): a conversation, `safe` / `unsafe` and the violated codes. Every
   code is checked against the taxonomy (`data.categories`, default Llama Guard 3's S1-S14) before anything runs.
   Without `data.path` the rows are posttrain's seed set (`safety/seed_data.py`), written to `<out>/data/`.
2. Rows with `split: heldout` (else a seeded `data.heldout_fraction` by id) are held out for evaluation.
3. A row becomes one training sequence: the prompt is exactly what the judge scores, `build_prompt(messages, 3,
   taxonomy)` plus the blank line Llama 3 writes after the assistant header, tokenised on its own as the judge
   tokenises it; the target is Llama Guard 3's answer (`safe`, or `unsafe` and a line of codes) and the end-of-turn
   token. Only the answer is learnt, so P(first token = "unsafe") after that prompt is the trained score.
4. Training is `train_sft` with this rendering (same loop, checkpoints, resume, model card: `recipe: guard`).
5. Evaluation (`evals/guard.py`) of the held-out rows through the `llama_guard` judge, for the starting model
   zero-shot (`eval.before`) and for the trained one: `eval_before/`, `eval_after/`, and `guard_metrics.json`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError
from posttrain.judges.llama_guard import (
    _SCORE_SUFFIX,
    LG3_CATEGORIES,
    Category,
    build_prompt,
    custom_categories,
)
from posttrain.records import content_id, write_records
from posttrain.safety.records import GuardExample, check_taxonomy
from posttrain.train.data import Sequence, Source, long_prompt_error
from posttrain.train.runtime import DataConfig, LoRAConfig, ModelConfig, TrainResult
from posttrain.train.sft import SFTConfig, SFTDataConfig, SFTLoopConfig, train_sft


@dataclass
class GuardDataConfig(SFTDataConfig):
    # The taxonomy in every prompt: names, (name, description) pairs or {code, name, description} dicts as the
    # llama_guard judge's `categories` option (judge with the same list); None = Llama Guard 3's S1-S14.
    categories: list[Any] | None = None
    heldout_fraction: float = 0.2  # of the rows without a `split` field, chosen by a seeded hash of their id
    seed_set_seed: int = 0  # without data.path: the seed of posttrain's seed set


@dataclass
class GuardLoopConfig(SFTLoopConfig):
    output_dir: str = "runs/guard"


@dataclass
class GuardEvalConfig:
    enabled: bool = True
    before: bool = True  # also evaluate the starting model, zero-shot: the baseline of the figures
    threshold: float = 0.5  # unsafe when P(unsafe) reaches it
    generate: bool = True  # decode the answer too: per-category figures (a few tokens more per row)
    batch_size: int = 4
    limit: int | None = None  # the first N held-out rows only


@dataclass
class GuardConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: GuardDataConfig = field(default_factory=GuardDataConfig)
    train: GuardLoopConfig = field(default_factory=GuardLoopConfig)
    eval: GuardEvalConfig = field(default_factory=GuardEvalConfig)


@dataclass
class GuardResult:
    train: TrainResult
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    n_train: int
    n_heldout: int


def taxonomy(cfg: GuardDataConfig) -> list[Category]:
    return custom_categories(cfg.categories, 3) if cfg.categories else list(LG3_CATEGORIES)


def guard_sequence(
    tokenizer: Any, example: GuardExample, categories: list[Category], max_length: int
) -> Sequence | None:
    """Token ids and targets of one row (None if it does not fit in `max_length`; the prompt is never cut)."""
    messages = [m.model_dump() for m in example.messages]
    # Tokenised apart from the answer, exactly as the judge tokenises what it scores ("\n\n" then "unsafe" would
    # merge differently when tokenised together).
    prompt = build_prompt(messages, 3, categories) + _SCORE_SUFFIX[3]
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False).input_ids)
    if tokenizer.eos_token_id is None:
        raise InputError("the tokenizer has no end-of-sequence token to end the guard's answer with")
    answer = list(tokenizer(example.target, add_special_tokens=False).input_ids) + [
        int(tokenizer.eos_token_id)
    ]
    if len(prompt_ids) + len(answer) > max_length:
        return None
    return Sequence(prompt_ids + answer, [False] * len(prompt_ids) + [True] * len(answer))


def guard_tokenizer(
    categories: list[Category],
) -> Callable[[Any, Any, DataConfig, Source], tuple[list[int], list[Sequence]]]:
    """`train_sft`'s `tokenize` hook for guard rows."""

    def tokenize(
        examples: Any, tokenizer: Any, data: DataConfig, source: Source
    ) -> tuple[list[int], list[Sequence]]:
        kept, seqs = [], []
        for i, example in enumerate(examples):
            seq = guard_sequence(tokenizer, example, categories, data.max_length)
            if seq is None:
                if data.long_prompt == "skip":
                    continue
                raise source.error(i, long_prompt_error(data.max_length))
            kept.append(i)
            seqs.append(seq)
        if not kept:
            raise InputError("no rows left to train on (all exceeded data.max_length)", source.path)
        return kept, seqs

    return tokenize


def split_rows(examples: list[GuardExample], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices: a row's `split` decides, else a seeded hash of its id against `fraction`."""
    if not 0 <= fraction < 1:
        raise InputError(f"data.heldout_fraction must be in [0, 1), got {fraction}")
    train: list[int] = []
    heldout: list[int] = []
    for i, e in enumerate(examples):
        held = e.split == "heldout" if e.split else random.Random(content_id(seed, e.id)).random() < fraction
        (heldout if held else train).append(i)
    return train, heldout


def _subset(source: Source, indices: list[int]) -> Source:
    lines = source.lines or list(range(1, max(indices, default=0) + 2))
    return Source(source.path, [lines[i] for i in indices]) if source.path else Source()


def train_guard(
    cfg: GuardConfig,
    examples: list[GuardExample] | None = None,
    source: Source | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> GuardResult:
    """Fine-tune and evaluate a guard; `examples=None` trains on posttrain's seed set."""
    from posttrain.models.embedded import load_model_and_tokenizer
    from posttrain.models.hf import HFBackend
    from posttrain.train.runtime import load_tokenizer_and_check, torch_dtype

    source = source or Source()
    categories = taxonomy(cfg.data)
    out = Path(cfg.train.output_dir)
    seed_set = examples is None
    if examples is None:
        from posttrain.safety.seed_data import seed_guard_examples

        examples = seed_guard_examples(cfg.data.seed_set_seed)
    check_taxonomy(examples, categories, source.path, source.lines)
    train_idx, heldout_idx = split_rows(examples, cfg.data.heldout_fraction, cfg.train.seed)
    if not train_idx:
        raise InputError("no rows to train on: every row is held out", source.path)
    heldout = [examples[i] for i in heldout_idx][: cfg.eval.limit]

    # Every row is rendered once before anything is written, so a row that does not fit is an error up front.
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    guard_tokenizer(categories)(examples, tokenizer, cfg.data, source)

    if seed_set:
        write_records(out / "data" / "seed_train.jsonl", [examples[i] for i in train_idx])
        write_records(out / "data" / "seed_heldout.jsonl", [examples[i] for i in heldout_idx])
    codes = [c.code for c in categories]
    evaluate = cfg.eval.enabled and bool(heldout)
    before = None
    if evaluate and cfg.eval.before:
        backend = HFBackend(
            cfg.model.name, model_and_tokenizer=(model, tokenizer)
        )  # the same weights, no reload
        before = _evaluate(backend, heldout, out / "eval_before", codes, cfg)

    sft_cfg = SFTConfig(model=cfg.model, lora=cfg.lora, data=cfg.data, train=cfg.train)
    result = train_sft(
        sft_cfg, [examples[i] for i in train_idx], _subset(source, train_idx), model, tokenizer,
        tokenize=guard_tokenizer(categories), recipe="guard",
    )  # fmt: skip
    del model
    # Loaded back from disk as any user would, through the judge: what is measured is the saved model.
    after = _evaluate(str(result.model_dir), heldout, out / "eval_after", codes, cfg) if evaluate else None
    summary = {"train_rows": len(train_idx), "heldout_rows": len(heldout), "data": source.path or "posttrain seed set",
               "before": _headline(before), "after": _headline(after)}  # fmt: skip
    atomic_write_text(out / "guard_metrics.json", json.dumps(summary, indent=2) + "\n")
    return GuardResult(result, before, after, len(train_idx), len(heldout))


def _evaluate(
    model: Any, rows: list[GuardExample], out: Path, codes: list[str], cfg: GuardConfig
) -> dict[str, Any]:
    from posttrain.evals.guard import evaluate_guard

    e = cfg.eval
    return evaluate_guard(rows, model, out, codes, cfg.data.categories, e.threshold, e.generate, e.batch_size)


def _headline(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    keys = ("f1", "precision", "recall", "auprc")
    return {**{k: metrics["binary"][k] for k in keys}, "fpr_benign_prompts": metrics["fpr_benign_prompts"],
            "macro_f1_categories": metrics.get("macro_f1"), "unparsable": metrics["unparsable"]}  # fmt: skip
