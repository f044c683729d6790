"""Offline DPO as in Llama 3 §4.1.4, one readable loop.

    result = train_dpo(load_config(DPOConfig, "recipes/dpo.yaml"), pairs)

1. Tokenise every pair with the chat template; targets are the response tokens, with the template's formatting
   tokens (end-of-turn, headers) masked in both chosen and rejected (`data.mask_format_tokens`, Llama 3).
2. Reference log-probs: one no-grad pass of the initial model over all pairs, cached in `<out>/reference_logps.pt`
   (keyed by the token ids and the model files), so training holds a single model and a rerun skips the pass.
3. Loop: chosen and rejected of a micro-batch go through the model together as one padding-free packed row;
   per-sequence log-prob sums feed a pure loss from `losses.py` (sigmoid DPO, IPO or DPO-Positive, plus the
   optional length-normalised NLL on chosen that Llama 3 adds with coefficient 0.2); gradient accumulation;
   AdamW with warmup + cosine/linear; checkpoints every `train.save_every` steps that a rerun resumes from.
4. The final model is saved in HF format (LoRA: merged, plus the adapter).

An example is a `Pair`, or a `GroupPair` of K chosen and K rejected responses to one prompt: chosen k and rejected k
form the example's k-th pair of *slots*. The multi-sample losses (`loss.type` mdpo | mipo) compare a group's mean
log-ratios; the pairwise ones average over its K pairs; a `Pair` is a group of one, where both agree.

Multi-process: launch with `accelerate launch`; each process takes every world_size-th micro-batch and DDP averages
the gradients. Micro-batches that do not fill a whole optimizer step at the end of an epoch are dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from posttrain.errors import InputError
from posttrain.records import GroupPair, Pair, Text
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
from posttrain.train.logprobs import TokenLogps, check_supported, sequence_logps, token_logps
from posttrain.train.packed_attention import use_packed_attention
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
class DPOLossConfig:
    # sigmoid: DPO; dpop: DPO-Positive; mdpo / mipo: multi-sample DPO / IPO on group records (K vs K responses)
    type: Literal["sigmoid", "ipo", "dpop", "mdpo", "mipo"] = "sigmoid"
    beta: float = 0.1
    nll_coef: float = 0.0  # Llama 3 uses 0.2: length-normalised NLL on the chosen response
    label_smoothing: float = 0.0  # conservative DPO, sigmoid and mdpo losses only
    dpop_lambda: float = 50.0
    # mipo: subtract the estimated variance of the group means (an unbiased estimate of the squared target, but
    # unbounded below on fixed groups; docs/methods/training.md)
    mipo_unbiased: bool = False


@dataclass
class DPOLoopConfig(LoopConfig):
    output_dir: str = "runs/dpo"
    lr: float = 1e-6


@dataclass
class DPODataConfig(DataConfig):
    # With packing: a pair's chosen and rejected share one copy of their common prefix (the prompt) in a row, each
    # seeing exactly its own context (block mask), so the prompt is computed once instead of twice. Same log-probs.
    share_prompt: bool = True


@dataclass
class DPOConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    data: DPODataConfig = field(default_factory=DPODataConfig)
    train: DPOLoopConfig = field(default_factory=DPOLoopConfig)
    loss: DPOLossConfig = field(default_factory=DPOLossConfig)
    reference_batch_size: int = 4  # examples (pairs or groups) per no-grad reference batch (sorted by length)


GROUP_LOSSES = ("mdpo", "mipo")


def responses(row: Pair | GroupPair) -> tuple[list[Text], list[Text]]:
    """The chosen and the rejected responses of an example: a `Pair` is a group of one."""
    if isinstance(row, GroupPair):
        return row.chosen, row.rejected
    return [row.chosen], [row.rejected]


def tokenize_pairs(
    pairs: Iterable[Pair | GroupPair], tokenizer: Any, data: DataConfig, source: Source
) -> tuple[list[int], list[Sequence], list[Sequence], list[list[int]]]:
    """(indices of the examples kept, chosen sequences, rejected sequences, the slots of each kept example):
    chosen[s] and rejected[s] are slot s. Bad rows raise with their location."""
    kept: list[int] = []
    chosen: list[Sequence] = []
    rejected: list[Sequence] = []
    slots: list[list[int]] = []
    for i, row in enumerate(pairs):
        try:
            good, bad = responses(row)
            if len(good) != len(bad):
                raise InputError(
                    f"the group has {len(good)} chosen and {len(bad)} rejected responses; training compares K chosen "
                    "with K rejected, so both sides need the same number"
                )
            end_of_turn = isinstance(row, Pair) and row.rejected_truncated
            c = [render(tokenizer, row.prompt, text, data.max_length, data.mask_format_tokens,
                        end_of_turn_target=end_of_turn) for text in good]  # fmt: skip
            r = [render(tokenizer, row.prompt, text, data.max_length, data.mask_format_tokens) for text in bad]
            if any(seq is None for seq in c + r):
                if data.long_prompt == "skip":
                    continue
                raise long_prompt_error(data.max_length)
        except InputError as err:
            raise source.error(i, err) from None
        kept.append(i)
        slots.append(list(range(len(chosen), len(chosen) + len(c))))
        chosen += [seq for seq in c if seq is not None]
        rejected += [seq for seq in r if seq is not None]
    if not kept:
        raise InputError("no pairs left to train on (all prompts exceeded data.max_length)", source.path)
    return kept, chosen, rejected, slots


def pair_batch(
    chosen: list[Sequence], rejected: list[Sequence], groups: list[list[int]], pad: int, packing: bool,
    share_prompt: bool, one_row: bool = False,
) -> Batch:  # fmt: skip
    """The chosen of every slot of `groups` (in order) first, then their rejected: with n slots, sequences k and
    k + n are one pair. With a shared prompt, each group (the slots of one example) is one packed row, or with
    `one_row` (a model with the packed-row attention) all groups are one row without a mask."""
    slots = [s for group in groups for s in group]
    if not (packing and share_prompt):
        return collate([chosen[s] for s in slots] + [rejected[s] for s in slots], pad, packing)
    batch = packed_rows(
        [[chosen[s] for s in group] + [rejected[s] for s in group] for group in groups], pad, one_row=one_row
    )
    # packed_rows numbers a row's sequences in order (a group's chosen, then its rejected): renumber chosen-first.
    n, number, start = len(slots), [], 0
    for group in groups:
        number += [start + j for j in range(len(group))] + [n + start + j for j in range(len(group))]
        start += len(group)
    renumber = torch.tensor(number, dtype=torch.long)
    return dataclasses.replace(
        batch, target_seq=renumber[batch.target_seq], seq_end=batch.seq_end[torch.argsort(renumber)]
    )


@torch.no_grad()
def reference_logps(
    model: Any, chosen: list[Sequence], rejected: list[Sequence], cfg: DPOConfig, pad: int, groups: list[list[int]],
    one_row: bool = False,
) -> dict[int, tuple[float, float]]:  # fmt: skip
    """Sum of target log-probs of chosen and rejected under the (initial) model, for the slots of `groups`."""
    model.eval()
    if cfg.data.packing and cfg.data.share_prompt:
        # One row per example (shared prompt), as in training, sorted by row length so a batch's rows pad little.
        order = sorted(groups, key=lambda g: sum(len(chosen[s].ids) + len(rejected[s].ids) for s in g))
        out: dict[int, tuple[float, float]] = {}
        for start in range(0, len(order), cfg.reference_batch_size):
            rows = order[start : start + cfg.reference_batch_size]
            batch = pair_batch(chosen, rejected, rows, pad, True, True, one_row)
            values = sequence_logps(token_logps(model, batch, cfg.train.logprob_chunk), batch).double().tolist()
            slots = [s for g in rows for s in g]
            out.update({s: (values[k], values[k + len(slots)]) for k, s in enumerate(slots)})
        return out
    indices = [s for g in groups for s in g]
    # Sequences (not pairs) sorted by length, so a right-padded batch holds almost no padding. Right-padded, not
    # packed: the packed row's block-diagonal mask still costs attention over the whole row on CPU (sdpa does not
    # skip masked blocks), (16 x 450)^2 per layer for 16 sequences of 450 tokens, 16x the padded batch's cost.
    seqs = sorted(
        [(i, 0, chosen[i]) for i in indices] + [(i, 1, rejected[i]) for i in indices], key=lambda s: len(s[2].ids)
    )
    size = 2 * cfg.reference_batch_size
    logp: dict[tuple[int, int], float] = {}
    for start in range(0, len(seqs), size):
        part = seqs[start : start + size]
        batch = collate([s for _, _, s in part], pad, packing=False)
        values = sequence_logps(token_logps(model, batch, cfg.train.logprob_chunk), batch).double().tolist()
        logp.update({(i, side): v for (i, side, _), v in zip(part, values, strict=True)})
    return {i: (logp[(i, 0)], logp[(i, 1)]) for i in indices}


def _model_files_key(model: Any) -> list[Any]:
    path = Path(getattr(model, "name_or_path", "") or "")
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) if path.is_dir() else []
    return [str(path)] + [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]


def cached_reference(
    model: Any, chosen: list[Sequence], rejected: list[Sequence], slots: list[list[int]], cfg: DPOConfig, pad: int,
    out: Path, accel: Any, one_row: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Reference log-probs of every slot, from `<out>/reference_logps.pt` when the same tokens and model made it.
    A slot's value does not depend on the group around it, so the key is the slots' tokens."""
    from accelerate.utils import gather_object

    # Under mixed precision the reference pass runs in it too (after the dither, `dither_for_bf16`), so both sides of
    # every log-ratio share one precision and the policy's first log-probs equal the reference ones exactly.
    key = run_fingerprint(
        _model_files_key(model),
        [(c.ids, c.targets, r.ids, r.targets) for c, r in zip(chosen, rejected, strict=True)],
        accel.mixed_precision,
        # the dithered start (`dither_for_bf16`) depends on the seed
        None if accel.mixed_precision == "no" else (cfg.train.bf16_dither, cfg.train.seed),
        *([] if model.dtype == torch.float32 else [str(model.dtype)]),  # bf16 weights: another model
    )
    path = out / "reference_logps.pt"
    if path.exists():
        cached = torch.load(path, map_location="cpu")
        if cached.get("key") == key:
            return cached["chosen"], cached["rejected"]
    mine = slots[accel.process_index :: accel.num_processes]
    with accel.autocast():
        parts = gather_object([reference_logps(model, chosen, rejected, cfg, pad, mine, one_row)])
    merged: dict[int, tuple[float, float]] = {}
    for part in parts:
        merged.update(part)
    ref_chosen = torch.tensor([merged[i][0] for i in range(len(chosen))], dtype=torch.float64)
    ref_rejected = torch.tensor([merged[i][1] for i in range(len(chosen))], dtype=torch.float64)
    if accel.is_main_process:
        tmp = path.with_name(".reference_logps.pt.tmp")
        torch.save({"key": key, "chosen": ref_chosen, "rejected": ref_rejected}, tmp)
        tmp.replace(path)
    accel.wait_for_everyone()
    return ref_chosen, ref_rejected


def dpo_step_loss(
    cfg: DPOLossConfig,
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    chosen_len: torch.Tensor,
    rejected_len: torch.Tensor,
    groups: torch.Tensor,
) -> torch.Tensor:
    """One loss per example for the configured loss type (+ the optional NLL term); slot s belongs to example
    `groups[s]`. mdpo / mipo compare the group means; a pairwise loss is the mean over the example's pairs."""
    if cfg.type == "mdpo":
        loss = losses.mdpo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, groups, cfg.beta, cfg.label_smoothing
        )
    elif cfg.type == "mipo":
        loss = losses.mipo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_len, rejected_len, groups, cfg.beta,
            cfg.mipo_unbiased,
        )  # fmt: skip
    elif cfg.type == "sigmoid":
        per_pair = losses.dpo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta, cfg.label_smoothing
        )
        loss = losses.group_means(per_pair, groups)
    elif cfg.type == "ipo":
        per_pair = losses.ipo_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, chosen_len, rejected_len, cfg.beta
        )
        loss = losses.group_means(per_pair, groups)
    else:
        per_pair = losses.dpop_loss(
            policy_chosen, policy_rejected, ref_chosen, ref_rejected, cfg.beta, cfg.dpop_lambda
        )
        loss = losses.group_means(per_pair, groups)
    if cfg.nll_coef:
        loss = loss + cfg.nll_coef * losses.group_means(losses.chosen_nll(policy_chosen, chosen_len), groups)
    return loss


def check_config(cfg: DPOConfig) -> None:
    check_loop(cfg.train)
    if cfg.loss.beta <= 0:
        raise InputError("loss.beta must be positive")


def train_dpo(
    cfg: DPOConfig,
    pairs: list[Pair] | list[GroupPair],
    source: Source | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> TrainResult:
    """Train with DPO on `pairs` (or groups: `GroupPair` records); returns where the model and metrics are.
    `model`/`tokenizer` may be passed in (already loaded, e.g. by the pipeline); otherwise `cfg.model` is loaded."""
    from posttrain.models.embedded import load_model_and_tokenizer

    check_config(cfg)
    source = source or Source()
    loop = cfg.train
    accel = start_process(loop)

    # Everything that can be wrong with the input is checked before anything is written.
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model.name, dtype=torch_dtype(cfg.model.dtype))
    tokenizer = load_tokenizer_and_check(cfg.model, model, tokenizer)
    check_supported(model)
    kept, chosen, rejected, slots = tokenize_pairs(pairs, tokenizer, cfg.data, source)
    pad = pad_token_id(tokenizer)
    plan = plan_steps(len(kept), loop, accel, "groups" if any(isinstance(p, GroupPair) for p in pairs) else "pairs")

    fingerprint = run_fingerprint(
        [pairs[i].id for i in kept], model_key(cfg.model), cfg.data.__dict__, cfg.loss.__dict__, cfg.lora.__dict__,
        trajectory_settings(loop),
    )  # fmt: skip
    out = claim_output_dir(loop, fingerprint, "dpo", accel)

    dither_for_bf16(model, loop, cfg.lora)  # before the reference pass: π_ref is the dithered start
    speed = Throughput()  # the reference pass counts in the run's time, as in the benchmark
    # Packed-row attention before the reference pass, so its rows are laid out as training's: one unmasked row.
    one_row = loop.packed_attention and use_packed_attention(model)
    ref_chosen_all, ref_rejected_all = cached_reference(
        model, chosen, rejected, slots, cfg, pad, out, accel, one_row
    )

    model = apply_lora(model, cfg.lora)
    prepare_for_training(model, loop)
    lengths = [sum(len(chosen[s].ids) + len(rejected[s].ids) for s in group) for group in slots]
    optimizer, scheduler = make_optimizer(model, loop, plan.total_steps)
    policy, optimizer = accel.prepare(TokenLogps(model, loop.logprob_chunk), optimizer)
    lm = accel.unwrap_model(policy).lm
    checkpoints = Checkpoints(out, loop, accel, lm, optimizer, scheduler, plan.total_steps)
    step, tokens_seen = checkpoints.resume()
    log = MetricsLog(
        out / "metrics.jsonl", step, accel.is_main_process, report_to=loop.report_to, config=asdict(cfg)
    )
    bar = Progress(
        plan.total_steps, step, ["loss", "rewards/accuracy", "rewards/margin", "tokens_per_s"],
        enabled=loop.progress and accel.is_main_process, title="dpo",
    )  # fmt: skip
    beta = cfg.loss.beta
    try:
        while step < plan.total_steps:
            epoch = plan.epoch(step)
            batches = plan_batches(
                lengths, loop.batch_size, loop.seed, epoch, cfg.data.shuffle, cfg.data.bucket_by_length
            )
            mine = plan.micro_batches(batches, step)
            sums = StepSums(
                "loss", "accuracy", "margin", "reward_chosen", "reward_rejected", "logratio_chosen", "logps_chosen",
                "logps_rejected", "examples", "tokens",
            )  # fmt: skip
            # Each example's loss depends only on its own sequences, so a micro-batch can go through the model a
            # few examples at a time (`train.examples_per_forward`) with the exact same gradient and a fraction of
            # the activation memory. Only the last pass of a step all-reduces gradients under DDP.
            passes = forward_passes(mine, loop.examples_per_forward)
            for p, (idx, part) in enumerate(passes):
                groups = [slots[e] for e in part]
                flat = [s for group in groups for s in group]
                group_of = torch.repeat_interleave(torch.arange(len(part)), torch.tensor([len(g) for g in groups]))
                batch = pair_batch(
                    chosen, rejected, groups, pad, cfg.data.packing, cfg.data.share_prompt, one_row
                )
                n = len(flat)
                sync = contextlib.nullcontext() if p == len(passes) - 1 else accel.no_sync(policy)
                with sync:
                    with accel.autocast():
                        logps = sequence_logps(policy(batch), batch)
                    target_lengths = batch.lengths().to(logps.device)
                    group_of = group_of.to(logps.device)
                    pol_c, pol_r = logps[:n], logps[n:]
                    ref_c = ref_chosen_all[flat].to(logps)
                    ref_r = ref_rejected_all[flat].to(logps)
                    per_example = dpo_step_loss(
                        cfg.loss, pol_c, pol_r, ref_c, ref_r, target_lengths[:n], target_lengths[n:], group_of
                    )
                    accel.backward(per_example.sum() / (len(idx) * loop.grad_accum))
                # Per example: a group's mean over its responses (for a pair, the pair's own values).
                reward_c, reward_r = (
                    losses.group_means(r, group_of) for r in losses.implicit_rewards(pol_c, pol_r, ref_c, ref_r, beta)
                )
                sums.add(
                    loss=per_example.detach().sum(),
                    accuracy=(reward_c > reward_r).double().sum(),
                    margin=(reward_c - reward_r).sum(),
                    reward_chosen=reward_c.sum(),
                    reward_rejected=reward_r.sum(),
                    logratio_chosen=losses.group_means((pol_c - ref_c).detach(), group_of).sum(),
                    logps_chosen=losses.group_means(pol_c.detach(), group_of).sum(),
                    logps_rejected=losses.group_means(pol_r.detach(), group_of).sum(),
                    examples=len(part),
                    tokens=batch.n_tokens,
                )
            if loop.max_grad_norm is not None:
                grad_norm = float(accel.clip_grad_norm_(policy.parameters(), loop.max_grad_norm))
            else:
                grad_norm = float("nan")
            lr = scheduler.get_last_lr()[0]  # the rate this step used
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1

            totals = sums.reduce(accel)
            n_pairs = totals["examples"]
            tokens_seen += int(totals["tokens"])
            row = {
                "step": step,
                "epoch": epoch,
                "loss": totals["loss"] / n_pairs,
                "rewards/accuracy": totals["accuracy"] / n_pairs,
                "rewards/margin": totals["margin"] / n_pairs,
                "rewards/chosen": totals["reward_chosen"] / n_pairs,
                "rewards/rejected": totals["reward_rejected"] / n_pairs,
                "logratio/chosen": totals["logratio_chosen"] / n_pairs,
                "logps/chosen": totals["logps_chosen"] / n_pairs,
                "logps/rejected": totals["logps_rejected"] / n_pairs,
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
    card = ModelCard("dpo", cfg, fingerprint, len(kept), source.path, result)
    save_on_main(accel, lm, tokenizer, out, cfg.lora, card)
    return result

