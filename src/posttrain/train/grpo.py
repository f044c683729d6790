"""The GRPO family on the online loop's rollouts: GRPO, RLOO and REINFORCE++ with verifiable rewards.

    tasks: {instruction_following: {optimizer: grpo, k: 4, reward: {type: ifeval}, gate: true}}

The online loop (`train/cgpo.py`) samples K responses per prompt from the current policy, judges them with the
task's Mixture of Judges and computes their per-token log-probs under the sampling policy π_old and the reference
π_ref. This module turns one such rollout into a loss (docs/methods/grpo.md):

1. reward per response: r(s, a) from the task's reward judge (any judge's score: the IF judge's share of
   constraints met, a math verifier's 0/1, a reward model); with `gate`, 0 where a constraint judge fails or the
   response was cut off while `generation.require_finished` (CGPO's Mixture of Judges as a gate: constrained GRPO);
   with `overlong: penalty`, DAPO's soft overlong punishment added; a judge failure leaves the response out;
2. advantage per response or token:
   - grpo (Shao et al. 2024): (r − mean of the prompt's K) / (their std + 1e-4); `scale_advantages: false` keeps
     the numerator only (Dr. GRPO, Liu et al. 2025);
   - rloo (Ahmadian et al. 2024): r − mean of the prompt's *other* K − 1 rewards, with −kl_coef·(log π_old −
     log π_ref) of the whole response in r;
   - reinforce_pp (Hu 2025): per token, r − kl_coef·Σ of the later tokens' log-ratios, normalised over the batch;
3. loss per token: PPO's clipped surrogate with ratio π/π_old (ε_low = clip_eps, ε_high = clip_eps_high), plus
   for grpo kl_coef·k3(π‖π_ref);
4. tokens add up by `loss_aggregation`: token (DAPO), sequence (the GRPO paper) or fixed (Dr. GRPO).
With `drop_uniform_groups`, prompts whose K rewards are all equal are left out (their advantage is 0 anyway; this
is DAPO's dynamic-sampling filter); with `refill: n` as well, the loop rolls out up to n more batches of prompts in
the same step while fewer than batch_size prompts carry signal (DAPO's dynamic sampling, `informative_groups`);
with `overlong: filter`, cut-off responses keep their place in the group statistics but get no loss (DAPO's
overlong filtering).

`train.updates_per_rollout` > 1 takes several optimizer steps on one rollout (GRPO's μ): π_old stays the policy
that sampled, so the ratio and its clip do their work from the second step on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from posttrain.train import losses
from posttrain.train.data import Batch

if TYPE_CHECKING:  # the online loop imports this module, not the other way round at run time
    from posttrain.train.cgpo import CGPOConfig, CGPOTask, OnlineState, Rollout, Update


def overlong_penalty(length: int, max_tokens: int, buffer: int) -> float:
    """DAPO's soft overlong punishment: 0 up to max_tokens − buffer, then linear to −1 at max_tokens."""
    start = max_tokens - buffer
    return 0.0 if length <= start else max(-1.0, (start - length) / buffer)


def rewards_of(task: CGPOTask, r: Rollout, cfg: CGPOConfig) -> list[float | None]:
    """Step 1: each response's scalar reward, None where it cannot be used (untrainable, or a judge failed)."""
    out: list[float | None] = []
    for i, completion in enumerate(r.completions):
        result = r.results[i]
        if r.seqs[i] is None or r.ok[i] is None or result.reward is None:
            out.append(None)
            continue
        reward = 0.0 if task.gate and not r.ok[i] else float(result.reward)
        if task.overlong == "penalty":
            reward += overlong_penalty(completion.completion_tokens, cfg.generation.max_new_tokens,
                                       task.overlong_buffer)  # fmt: skip
        out.append(reward)
    return out


def informative_groups(task: CGPOTask, r: Rollout, cfg: CGPOConfig) -> int:
    """This process's prompts whose usable rewards are not all equal: the groups a group optimizer learns from."""
    by_prompt: dict[int, set[float]] = {}
    for b, x in zip(r.prompt_of, rewards_of(task, r, cfg), strict=True):
        if x is not None:
            by_prompt.setdefault(b, set()).add(x)
    return sum(len(values) > 1 for values in by_prompt.values())


def _flat(per_seq: list[torch.Tensor | None], lengths: torch.Tensor) -> torch.Tensor | None:
    """The sequences' token log-probs end to end (float64), or None when the rollout did not compute them."""
    if any(t is None for t in per_seq):
        return None
    assert all(len(t) == n for t, n in zip(per_seq, lengths.tolist(), strict=True))  # type: ignore[arg-type]
    return torch.cat(per_seq).double() if per_seq else torch.zeros(0, dtype=torch.float64)  # type: ignore[arg-type]


def group_update(task: CGPOTask, r: Rollout, cfg: CGPOConfig, state: OnlineState) -> Update:
    """The update of one rollout. A process holds whole prompts (groups), so group statistics are local; the
    batch-level ones (token and response counts, REINFORCE++'s mean and variance) are summed over processes."""
    from posttrain.train.cgpo import Update

    rewards = rewards_of(task, r, cfg)
    use = [i for i, x in enumerate(rewards) if x is not None]
    dropped = 0
    if task.drop_uniform_groups:
        by_prompt: dict[int, list[int]] = {}
        for i in use:
            by_prompt.setdefault(r.prompt_of[i], []).append(i)
        uniform = {b for b, idx in by_prompt.items() if len({rewards[i] for i in idx}) == 1}
        dropped = len(uniform)
        use = [i for i in use if r.prompt_of[i] not in uniform]
    lengths = torch.tensor([r.seqs[i].n_targets for i in use], dtype=torch.long)  # type: ignore[union-attr]
    reward = torch.tensor([rewards[i] for i in use], dtype=torch.float64)
    groups = torch.tensor([r.prompt_of[i] for i in use], dtype=torch.long)
    token_seq = torch.repeat_interleave(torch.arange(len(use)), lengths)
    # π_old's and π_ref's token log-probs, when the rollout computed them (`needs_old_pass`, `needs_reference`):
    # without π_old's, the update's own detached log-probs are π_old; without π_ref's, no KL term reads them.
    old_flat = _flat([r.old_token_logps[i] for i in use], lengths)
    ref_flat = _flat([r.ref_token_logps[i] for i in use], lengths)

    # Step 2: advantages, one per token.
    # Both exist whenever a KL term needs them (rloo / reinforce_pp with kl_coef > 0 run both passes).
    token_kl = old_flat - ref_flat if old_flat is not None and ref_flat is not None else torch.zeros(len(token_seq))
    if task.optimizer == "grpo":
        token_adv = losses.group_advantages(reward, groups, task.scale_advantages)[token_seq]
    elif task.optimizer == "rloo":
        seq_kl = torch.zeros(len(use), dtype=torch.float64).index_add(0, token_seq, token_kl.double())
        token_adv = losses.rloo_advantages(reward - task.kl_coef * seq_kl, groups)[token_seq]
    else:
        returns = losses.reinforce_pp_returns(reward, token_seq, token_kl.double(), task.kl_coef)
        total, squares, count = state.reduce_sum(float(returns.sum()), float((returns**2).sum()), len(returns))
        mean = total / max(count, 1)
        token_adv = losses.whiten(returns, mean, max(squares / max(count, 1) - mean**2, 0.0))

    # Step 4's weights; overlong filtering zeroes a cut-off response's tokens but keeps it in the group statistics.
    n_total, tokens_total = state.reduce_sum(len(use), float(lengths.sum()))
    weight = losses.token_weights(lengths, task.loss_aggregation, cfg.generation.max_new_tokens, n_total,
                                  tokens_total)  # fmt: skip
    if task.overlong == "filter":
        cut = torch.tensor([r.completions[i].finish_reason == "length" for i in use], dtype=torch.bool)
        weight = torch.where(cut, torch.zeros_like(weight), weight)
    token_weight = weight[token_seq]
    starts = torch.cumsum(lengths, 0) - lengths
    eps_high = task.clip_eps if task.clip_eps_high is None else task.clip_eps_high
    kl_in_loss = task.kl_coef if task.optimizer == "grpo" else 0.0
    seen = {"tokens": 0, "clipped": 0}
    stats: dict[str, Any] = {"trained": len(use), "dropped_groups": dropped, "clip_fraction": 0.0,
                             "advantage_abs": float(token_adv.abs().mean()) if use else 0.0}  # fmt: skip

    def part_loss(start: int, per_token: torch.Tensor, batch: Batch) -> torch.Tensor:
        first = int(starts[start]) if start < len(use) else 0
        span = slice(first, first + len(per_token))
        old = per_token.detach() if old_flat is None else old_flat[span].to(per_token)
        loss, clipped = losses.clipped_policy_loss(per_token, old, token_adv[span].to(per_token), task.clip_eps,
                                                   eps_high)  # fmt: skip
        if kl_in_loss:
            assert ref_flat is not None  # kl_coef > 0 keeps π_ref (needs_reference)
            loss = loss + kl_in_loss * losses.k3_kl(per_token, ref_flat[span].to(per_token))
        w = token_weight[span].to(per_token)
        seen["tokens"] += int((w > 0).sum())
        seen["clipped"] += int((clipped & (w > 0)).sum())
        stats["clip_fraction"] = seen["clipped"] / max(seen["tokens"], 1)
        return (loss * w).sum()

    seqs = [s for i in use if (s := r.seqs[i]) is not None]
    return Update(seqs, 1, 1, part_loss, stats)
