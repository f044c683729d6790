"""Supervised fine-tuning: cross-entropy on the response tokens only (Llama 3 §4.1.3), one readable loop.

    result = train_sft(load_config(SFTConfig, "recipes/sft.yaml"), examples)

An example is `prompt` + `completion` (strings or chat messages, as a `Sample` row), or `messages`: a conversation
whose trailing assistant message(s) are the response and everything before them the prompt (earlier assistant
turns are context, not targets). The chat template renders both; prompt tokens are never targets. The end-of-turn
token *is* a target by default (`data.mask_format_tokens=false`), so the model learns to stop.

The loss is the mean over all response tokens of an optimizer step (every token weighs the same, TRL's and
torchtune's convention); under DDP each process normalises by its own token count and gradients are averaged.
"""

from __future__ import annotations

import collections.abc
import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import model_validator

from posttrain.errors import InputError
from posttrain.records import Message, Record, Text
from posttrain.train import losses
from posttrain.train.data import (
    Sequence,
    Source,
    collate,
    forward_passes,
    long_prompt_error,
    pad_token_id,
    plan_batches,
    render,
)
from posttrain.train.logprobs import TokenLogps, check_supported
from posttrain.train.runtime import (
    Checkpoints,
    DataConfig,
    LoopConfig,
    LoRAConfig,
    MetricsLog,
    ModelCard,
    ModelConfig,
    Progress,
    StepSums,
    Throughput,
    TrainResult,
    apply_lora,
    check_loop,
    claim_output_dir,
    dither_for_bf16,
    load_tokenizer_and_check,
    make_optimizer,
    model_key,
    plan_steps,
    prepare_for_training,
    run_fingerprint,
    save_on_main,
    start_process,
    torch_dtype,
    trajectory_settings,
)


class SFTExample(Record):
    """One SFT row: `prompt` + `completion`, or `messages` ending with the assistant's response."""

    prompt: Text | None = None
    completion: Text | None = None
    messages: list[Message] | None = None
    _id_fields: ClassVar[tuple[str, ...]] = ("prompt", "completion", "messages")

    @model_validator(mode="after")
    def _one_form(self) -> SFTExample:
        if self.messages is not None:
            if not self.messages or self.messages[-1].role != "assistant":
                raise ValueError("'messages' must end with an assistant message (the response to train on)")
            if all(m.role == "assistant" for m in self.messages):
                raise ValueError("'messages' has no prompt before the assistant response")
        elif self.prompt is None or self.completion is None:
            raise ValueError("give 'prompt' and 'completion', or 'messages'")
        return self

    def prompt_and_response(self) -> tuple[Text, Text]:
        if self.messages is None:
            assert self.prompt is not None and self.completion is not None
            return self.prompt, self.completion
        split = len(self.messages)
        while split > 0 and self.messages[split - 1].role == "assistant":
            split -= 1
        return list(self.messages[:split]), list(self.messages[split:])


@dataclass
class SFTDataConfig(DataConfig):
    mask_format_tokens: bool = False  # the end-of-turn token stays a target, so the model learns to stop


@dataclass
class SFTLoopConfig(LoopConfig):
    output_dir: str = "runs/sft"


@dataclass
class SFTConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    train: SFTLoopConfig = field(default_factory=SFTLoopConfig)


def tokenize_examples(
    examples: list[SFTExample], tokenizer: Any, data: DataConfig, source: Source
) -> tuple[list[int], list[Sequence]]:
    kept, seqs = [], []
    for i, example in enumerate(examples):
        try:
            prompt, response = example.prompt_and_response()
            seq = render(tokenizer, prompt, response, data.max_length, data.mask_format_tokens)
            if seq is None:
                if data.long_prompt == "skip":
                    continue
                raise long_prompt_error(data.max_length)
        except InputError as err:
            raise source.error(i, err) from None
        kept.append(i)
        seqs.append(seq)
    if not kept:
        raise InputError("no examples left to train on (all prompts exceeded data.max_length)", source.path)
    return kept, seqs


# (examples, tokenizer, data config, source) -> (indices of the examples kept, their sequences)
Tokenize = Callable[[Any, Any, DataConfig, Source], tuple[list[int], list[Sequence]]]


def train_sft(
    cfg: SFTConfig,
    examples: collections.abc.Sequence[Record],
    source: Source | None = None,
    model: Any = None,
    tokenizer: Any = None,
    tokenize: Tokenize = tokenize_examples,
    recipe: str = "sft",
) -> TrainResult:
    """Fine-tune on `examples`; returns where the model and metrics are. `tokenize` renders the examples (the chat
    template by default; `train/guard.py` renders Llama Guard prompts), `recipe` names the run in its files."""
    from posttrain.models.embedded import load_model_and_tokenizer

    check_loop(cfg.train)
    source = source or Source()
    loop = cfg.train
    accel = start_process(loop)

    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    check_supported(model)
    kept, seqs = tokenize(examples, tokenizer, cfg.data, source)
    pad = pad_token_id(tokenizer)
    plan = plan_steps(len(seqs), loop, accel, "examples")

    fingerprint = run_fingerprint(
        [examples[i].id for i in kept], model_key(cfg.model), cfg.data.__dict__, cfg.lora.__dict__,
        trajectory_settings(loop),
    )  # fmt: skip
    out = claim_output_dir(loop, fingerprint, recipe, accel)

    dither_for_bf16(model, loop, cfg.lora)
    model = apply_lora(model, cfg.lora)
    prepare_for_training(model, loop)
    lengths = [len(s.ids) for s in seqs]
    optimizer, scheduler = make_optimizer(model, loop, plan.total_steps)
    policy, optimizer = accel.prepare(TokenLogps(model, loop.logprob_chunk), optimizer)
    lm = accel.unwrap_model(policy).lm
    checkpoints = Checkpoints(out, loop, accel, lm, optimizer, scheduler, plan.total_steps)
    step, tokens_seen = checkpoints.resume()
    log = MetricsLog(
        out / "metrics.jsonl", step, accel.is_main_process, report_to=loop.report_to, config=asdict(cfg)
    )
    bar = Progress(
        plan.total_steps, step, ["loss", "tokens_per_s"], enabled=loop.progress and accel.is_main_process,
        title=recipe,
    )  # fmt: skip
    speed = Throughput()
    try:
        while step < plan.total_steps:
            epoch = plan.epoch(step)
            batches = plan_batches(
                lengths, loop.batch_size, loop.seed, epoch, cfg.data.shuffle, cfg.data.bucket_by_length
            )
            mine = plan.micro_batches(batches, step)
            step_targets = sum(seqs[i].n_targets for idx in mine for i in idx)
            passes = forward_passes(mine, loop.examples_per_forward)
            sums = StepSums("loss", "targets", "tokens")
            for p, (_, part) in enumerate(passes):
                batch = collate([seqs[i] for i in part], pad, cfg.data.packing)
                sync = contextlib.nullcontext() if p == len(passes) - 1 else accel.no_sync(policy)
                with sync:
                    with accel.autocast():
                        token_logps = policy(batch)
                    # Divided by the whole step's token count: every response token of the step weighs the same.
                    loss = losses.sft_loss(token_logps, torch.ones_like(token_logps), normalizer=step_targets)
                    accel.backward(loss)
                sums.add(loss=float(loss.detach()) * step_targets, tokens=batch.n_tokens)
            sums.add(targets=step_targets)
            grad_norm = (
                float(accel.clip_grad_norm_(policy.parameters(), loop.max_grad_norm))
                if loop.max_grad_norm is not None
                else float("nan")
            )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            totals = sums.reduce(accel)
            tokens_seen += int(totals["tokens"])
            row = {
                "step": step,
                "epoch": epoch,
                "loss": totals["loss"] / totals["targets"],
                "target_tokens": int(totals["targets"]),
                "grad_norm": grad_norm,
                "lr": lr,
                "tokens": tokens_seen,
                "tokens_per_s": speed.add(int(totals["tokens"])),
            }
            log.write(row)
            bar.update(row)
            checkpoints.save_if_due(step, epoch, tokens_seen)
    finally:
        bar.close()
        log.close()
    result = TrainResult(
        output_dir=out,
        model_dir=out / "model",
        metrics_path=out / "metrics.jsonl",
        metrics=log.rows,
        steps=step,
        train_seconds=speed.elapsed(),
        tokens=tokens_seen,
        skipped=len(examples) - len(kept),
    )
    card = ModelCard(recipe, cfg, fingerprint, len(kept), source.path, result)
    save_on_main(accel, lm, tokenizer, out, cfg.lora, card)
    return result
