"""Reward-model training (Llama 2 §3.2.2 / Llama 3 §4.1.2), one readable loop.

    result = train_reward(load_config(RMConfig, "recipes/rm.yaml"), pairs)

The reward model is any causal LM with a scalar head (`AutoModelForSequenceClassification`, `num_labels=1`; the
head starts random). The reward of a response is the head's output at the last token of the rendered
conversation (the chat template's end-of-turn), for every response of a pair.

Loss: Bradley-Terry, -log σ(r_chosen - r_rejected), with Llama 2's optional margin (`loss.use_margin`, read from
a pair's `margin` field; Llama 3 drops it). A pair may carry a third, `edited` response (Llama 3: edited > chosen >
rejected); the loss is then Bradley-Terry averaged over the three ordered pairs.

Packing (`data.pack_responses`, Llama 3's efficiency approximation): the prompt is written once per row followed by
all its responses; a block attention mask lets each response see the prompt and itself but not the other
responses, and each response's positions continue from the end of the prompt, so every reward equals the one from
the response's own unpacked sequence (tested) while the prompt is encoded once instead of 2-3 times.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from posttrain.errors import InputError
from posttrain.records import Pair, Text
from posttrain.train import losses
from posttrain.train.data import (
    Batch,
    Sequence,
    Source,
    collate,
    forward_passes,
    long_prompt_error,
    packed_rows,
    pad_token_id,
    plan_batches,
    render,
)
from posttrain.train.logprobs import unwrap
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


@dataclass
class RMLossConfig:
    use_margin: bool = False  # Llama 2's margin m(r), from each pair's `margin` field (0 when absent)


@dataclass
class RMDataConfig(DataConfig):
    mask_format_tokens: bool = False  # unused: a reward is read at the last token of the whole conversation
    pack_responses: bool = False  # one row per prompt with all its responses (Llama 3)


@dataclass
class RMLoopConfig(LoopConfig):
    output_dir: str = "runs/rm"


@dataclass
class RMConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: RMDataConfig = field(default_factory=RMDataConfig)
    train: RMLoopConfig = field(default_factory=RMLoopConfig)
    loss: RMLossConfig = field(default_factory=RMLossConfig)


def ranked_responses(pair: Pair) -> list[Text]:
    """Best first: [edited,] chosen, rejected."""
    edited = (pair.model_extra or {}).get("edited")
    if edited is not None and not (isinstance(edited, str) and edited.strip()):
        raise InputError("'edited' must be a non-empty string")
    return ([edited] if edited is not None else []) + [pair.chosen, pair.rejected]


def tokenize_pairs(
    pairs: list[Pair], tokenizer: Any, data: DataConfig, source: Source
) -> tuple[list[int], list[list[Sequence]]]:
    kept, rows = [], []
    for i, pair in enumerate(pairs):
        try:
            seqs = [render(tokenizer, pair.prompt, r, data.max_length, False) for r in ranked_responses(pair)]
            if any(s is None for s in seqs):
                if data.long_prompt == "skip":
                    continue
                raise long_prompt_error(data.max_length)
        except InputError as err:
            raise source.error(i, err) from None
        kept.append(i)
        rows.append([s for s in seqs if s is not None])
    if not kept:
        raise InputError("no pairs left to train on (all prompts exceeded data.max_length)", source.path)
    return kept, rows


class RewardScores(nn.Module):
    """Scalar reward at each sequence's last token; a module so DDP syncs its gradients."""

    def __init__(self, model: Any):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> Tensor:
        base = unwrap(self.model)
        head = base.score
        device = next(head.parameters()).device
        hidden = base.get_decoder()(
            input_ids=batch.input_ids.to(device),
            position_ids=batch.position_ids.to(device),
            attention_mask=None if batch.attention_mask is None else batch.attention_mask.to(device),
            use_cache=False,
        ).last_hidden_state
        last = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.seq_end.to(device))
        return head(last).squeeze(-1).float()


def group_batch(
    rows: list[list[Sequence]], idx: list[int], pad: int, data: RMDataConfig, one_row: bool = False
) -> tuple[Batch, Tensor]:
    """The batch of all responses of pairs `idx`, and a (pairs, max responses) index of their rewards (-1 absent);
    `one_row` for a model with the packed-row attention (`data.packed_rows`)."""
    groups = [rows[i] for i in idx]
    k = max(len(g) for g in groups)
    where = torch.full((len(groups), k), -1, dtype=torch.long)
    n = 0
    for r, g in enumerate(groups):
        where[r, : len(g)] = torch.arange(n, n + len(g))
        n += len(g)
    if data.pack_responses:
        return packed_rows(groups, pad, one_row), where
    return collate([s for g in groups for s in g], pad, data.packing), where


def load_reward_model(name: str, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from posttrain.models.embedded import resolve_model_path

    path = resolve_model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=dtype)
    return model, tokenizer


def train_reward(
    cfg: RMConfig, pairs: list[Pair], source: Source | None = None, model: Any = None, tokenizer: Any = None
) -> TrainResult:
    """Train a reward model on preference `pairs`; `model` (if given) must be a sequence-classification model."""
    check_loop(cfg.train)
    source = source or Source()
    loop = cfg.train
    accel = start_process(loop)

    if model is None:
        model, tokenizer = load_reward_model(cfg.model.name, torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    kept, rows = tokenize_pairs(pairs, tokenizer, cfg.data, source)
    if cfg.loss.use_margin and any(len(r) != 2 for r in rows):
        raise InputError("loss.use_margin applies to chosen/rejected pairs; some pairs also have an 'edited' response")
    margins = torch.tensor([float((pairs[i].model_extra or {}).get("margin", 0.0)) for i in kept])
    pad = pad_token_id(tokenizer)
    model.config.pad_token_id = pad
    plan = plan_steps(len(rows), loop, accel, "pairs")

    fingerprint = run_fingerprint(
        [pairs[i].id for i in kept], model_key(cfg.model), cfg.data.__dict__, cfg.loss.__dict__, cfg.lora.__dict__,
        trajectory_settings(loop),
    )  # fmt: skip
    out = claim_output_dir(loop, fingerprint, "rm", accel)

    dither_for_bf16(model, loop, cfg.lora)
    model = apply_lora(model, cfg.lora, task_type="SEQ_CLS")
    one_row = prepare_for_training(model, loop)
    lengths = [sum(len(s.ids) for s in r) for r in rows]
    optimizer, scheduler = make_optimizer(model, loop, plan.total_steps)
    scorer, optimizer = accel.prepare(RewardScores(model), optimizer)
    trained = accel.unwrap_model(scorer).model
    checkpoints = Checkpoints(out, loop, accel, trained, optimizer, scheduler, plan.total_steps)
    step, tokens_seen = checkpoints.resume()
    log = MetricsLog(
        out / "metrics.jsonl", step, accel.is_main_process, report_to=loop.report_to, config=asdict(cfg)
    )
    bar = Progress(
        plan.total_steps, step, ["loss", "accuracy", "margin", "tokens_per_s"],
        enabled=loop.progress and accel.is_main_process, title="rm",
    )  # fmt: skip
    speed = Throughput()
    try:
        while step < plan.total_steps:
            epoch = plan.epoch(step)
            batches = plan_batches(
                lengths, loop.batch_size, loop.seed, epoch, cfg.data.shuffle, cfg.data.bucket_by_length
            )
            mine = plan.micro_batches(batches, step)
            passes = forward_passes(mine, loop.examples_per_forward)
            sums = StepSums("loss", "accuracy", "margin", "reward", "pairs", "tokens")
            for p, (idx, part) in enumerate(passes):
                batch, where = group_batch(rows, part, pad, cfg.data, one_row)
                sync = contextlib.nullcontext() if p == len(passes) - 1 else accel.no_sync(scorer)
                with sync:
                    with accel.autocast():
                        flat = scorer(batch)
                    rewards = flat[where.clamp(min=0).to(flat.device)]  # (pairs, K), best first
                    valid = (where >= 0).to(flat.device)
                    if cfg.loss.use_margin:
                        per_pair = losses.bradley_terry_loss(
                            rewards[:, 0], rewards[:, 1], margins[part].to(rewards)
                        )  # fmt: skip
                    else:
                        per_pair = losses.ranked_bradley_terry_loss(rewards, valid)
                    accel.backward(per_pair.sum() / (len(idx) * loop.grad_accum))
                # chosen and rejected are the last two responses of every row
                last = valid.sum(dim=1) - 1
                rows_idx = torch.arange(len(part), device=rewards.device)
                r_chosen, r_rejected = rewards[rows_idx, last - 1].detach(), rewards[rows_idx, last].detach()
                sums.add(
                    loss=per_pair.detach().sum(),
                    accuracy=(r_chosen > r_rejected).double().sum(),
                    margin=(r_chosen - r_rejected).double().sum(),
                    reward=((r_chosen + r_rejected) / 2).double().sum(),
                    pairs=len(part),
                    tokens=batch.n_tokens,
                )
            grad_norm = (
                float(accel.clip_grad_norm_(scorer.parameters(), loop.max_grad_norm))
                if loop.max_grad_norm is not None
                else float("nan")
            )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            totals = sums.reduce(accel)
            n_pairs = totals["pairs"]
            tokens_seen += int(totals["tokens"])
            row = {
                "step": step,
                "epoch": epoch,
                "loss": totals["loss"] / n_pairs,
                "accuracy": totals["accuracy"] / n_pairs,
                "margin": totals["margin"] / n_pairs,
                "reward_mean": totals["reward"] / n_pairs,
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
        skipped=len(pairs) - len(kept),
    )
    card = ModelCard(
        "rm", cfg, fingerprint, len(kept), source.path, result, auto_class="AutoModelForSequenceClassification"
    )
    save_on_main(accel, trained, tokenizer, out, cfg.lora, card)
    return result
