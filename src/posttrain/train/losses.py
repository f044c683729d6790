"""Training losses as pure functions of tensors: no models, no state, no config objects.

Inputs are per-sequence sums of token log-probabilities (`*_logps`, shape (B,)) over the response tokens, their
token counts (`*_lengths`), and, for the reward model, scalar rewards. Every function returns per-example losses
(shape (B,)) so the caller decides how to reduce (mean over the batch, or a sum across gradient-accumulation steps).

References: DPO (Rafailov et al. 2023, eq. 7), IPO (Azar et al. 2023, eq. 17, length-normalised as in TRL),
Llama 3 §4.1.4 (DPO + 0.2 x NLL on the chosen response), CGPO's CODPO (Xu et al. 2024, eq. 14: length-normalised
chosen likelihood), DPO-Positive / Smaug (Pal et al. 2024), Llama 2 §3.2.2 (Bradley-Terry reward loss with margin),
mDPO / mIPO (Wang, Zhao et al. 2024: one loss per group of responses), CGPO's CRPG and CRRAFT (Xu et al. 2024, §4.2; docs/methods/cgpo.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def dpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """DPO's sigmoid loss: -log σ(β·[(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]).

    `label_smoothing` > 0 is conservative DPO (cDPO): the label is assumed flipped with that probability.
    """
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -(1 - label_smoothing) * F.logsigmoid(beta * margin) - label_smoothing * F.logsigmoid(-beta * margin)


def ipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """IPO: (h - 1/(2β))² with h the difference of *per-token average* log-ratios.

    The average (not the sum) keeps β comparable across response lengths; TRL does the same and reports that the
    IPO authors confirmed it is the form behind their results.
    """
    chosen = (policy_chosen_logps - ref_chosen_logps) / chosen_lengths.clamp(min=1)
    rejected = (policy_rejected_logps - ref_rejected_logps) / rejected_lengths.clamp(min=1)
    return (chosen - rejected - 1 / (2 * beta)) ** 2


def chosen_nll(policy_chosen_logps: Tensor, chosen_lengths: Tensor) -> Tensor:
    """Length-normalised negative log-likelihood of the chosen response: -log π(y_w|x) / |y_w|.

    This is the term Llama 3 adds to DPO (coefficient 0.2) and CODPO's `(λ/|a⁺|)·log π(a⁺|s)` with the sign that
    raises the chosen likelihood.
    """
    return -policy_chosen_logps / chosen_lengths.clamp(min=1)


def dpo_nll_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    chosen_lengths: Tensor,
    beta: float = 0.1,
    nll_coef: float = 0.2,
) -> Tensor:
    """DPO plus a length-normalised NLL on the chosen response (Llama 3: coefficient 0.2; CODPO: λ)."""
    dpo = dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return dpo + nll_coef * chosen_nll(policy_chosen_logps, chosen_lengths)


def dpop_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float = 0.1,
    lam: float = 50.0,
) -> Tensor:
    """DPO-Positive (Smaug): -log σ(β·[margin - λ·max(0, log π_ref(y_w) - log π(y_w))]).

    The penalty is active only once the policy's chosen likelihood falls below the reference's, which is the failure
    DPO-Positive targets (both log-probs falling while their margin grows). λ = 50 is the paper's value.
    """
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    penalty = torch.clamp(ref_chosen_logps - policy_chosen_logps, min=0)
    return -F.logsigmoid(beta * (margin - lam * penalty))


# ---------------------------------------------------------------------------------------------------- multi-sample
# mDPO / mIPO (Wang, Zhao et al. 2024, arXiv 2410.12138; docs/methods/training.md, where what is reconstructed is
# marked UNVERIFIED): a prompt's K chosen responses against its K rejected ones, compared through the *group means*
# of their log-ratios. Inputs are per sequence; chosen i and rejected i belong to group `groups[i]` (groups numbered
# 0..G-1, K of each per group), and the result has one loss per group, shape (G,). With K = 1 they are DPO and IPO.


def group_means(values: Tensor, groups: Tensor) -> Tensor:
    """The mean of `values` over each group, shape (G,)."""
    n = int(groups.max()) + 1 if groups.numel() else 0
    zeros = torch.zeros(n, dtype=values.dtype, device=values.device)
    count = zeros.index_add(0, groups, torch.ones_like(values))
    return zeros.index_add(0, groups, values) / count.clamp(min=1)


def variance_of_group_means(values: Tensor, groups: Tensor) -> Tensor:
    """Unbiased estimate of Var(mean of a group) from its own members: s² / K with s² the sample variance (÷ K−1);
    0 for a group of one, which has no spread to estimate it from."""
    n = int(groups.max()) + 1 if groups.numel() else 0
    zeros = torch.zeros(n, dtype=values.dtype, device=values.device)
    count = zeros.index_add(0, groups, torch.ones_like(values))
    centred = values - group_means(values, groups)[groups]
    sample_var = zeros.index_add(0, groups, centred**2) / (count - 1).clamp(min=1)
    return torch.where(count > 1, sample_var / count, zeros)


def mdpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    groups: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """mDPO: −log σ(β·[mean_k ρ(y_w,k) − mean_k ρ(y_l,k)]), ρ(y) = log π(y|x) − log π_ref(y|x) (sequence sums, as
    DPO). `label_smoothing` as in `dpo_loss` (cDPO applied to the group margin: our extension, not the paper's)."""
    chosen = group_means(policy_chosen_logps - ref_chosen_logps, groups)
    rejected = group_means(policy_rejected_logps - ref_rejected_logps, groups)
    margin = chosen - rejected
    return -(1 - label_smoothing) * F.logsigmoid(beta * margin) - label_smoothing * F.logsigmoid(-beta * margin)


def mipo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    chosen_lengths: Tensor,
    rejected_lengths: Tensor,
    groups: Tensor,
    beta: float = 0.1,
    unbiased: bool = False,
) -> Tensor:
    """mIPO: (h − 1/(2β))² with h = mean_k ρ̄(y_w,k) − mean_k ρ̄(y_l,k) over *per-token average* log-ratios ρ̄ (as
    `ipo_loss`).

    The target (E ρ̄_w − E ρ̄_l − 1/(2β))² is a square of expectations, so the square of the sample means overshoots
    it by Var(mean_w) + Var(mean_l). `unbiased` subtracts both, estimated from each group's own spread (needs K ≥ 2
    per side; a group of one is left as is): an unbiased estimate of the target, but no longer bounded below —
    spreading a group's log-ratios apart lowers it without limit, so on fixed offline groups it can be gamed.
    """
    chosen = (policy_chosen_logps - ref_chosen_logps) / chosen_lengths.clamp(min=1)
    rejected = (policy_rejected_logps - ref_rejected_logps) / rejected_lengths.clamp(min=1)
    h = group_means(chosen, groups) - group_means(rejected, groups)
    loss = (h - 1 / (2 * beta)) ** 2
    if unbiased:
        loss = loss - variance_of_group_means(chosen, groups) - variance_of_group_means(rejected, groups)
    return loss


def implicit_rewards(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
) -> tuple[Tensor, Tensor]:
    """DPO's implicit rewards β·log(π/π_ref) of the chosen and rejected responses (detached: for logging only)."""
    chosen = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return chosen, rejected


def bradley_terry_loss(chosen_rewards: Tensor, rejected_rewards: Tensor, margin: Tensor | None = None) -> Tensor:
    """Reward-model loss -log σ(r(y_w) - r(y_l) - m(r)) (Llama 2; Llama 3 drops the margin, so `margin=None`)."""
    diff = chosen_rewards - rejected_rewards
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff)


def ranked_bradley_terry_loss(rewards: Tensor, valid: Tensor) -> Tensor:
    """Bradley-Terry over every ordered pair of a ranked list (edited > chosen > rejected in Llama 3's packed rows).

    `rewards` (B, K) are ordered best first; `valid` (B, K) marks present responses. Returns the per-row mean of
    -log σ(r_i - r_j) over present pairs i < j, so a row of two responses is exactly `bradley_terry_loss`.
    """
    diff = rewards.unsqueeze(2) - rewards.unsqueeze(1)  # [b, i, j] = r_i - r_j
    k = rewards.shape[1]
    better = torch.triu(torch.ones(k, k, dtype=torch.bool, device=rewards.device), diagonal=1)
    pair_ok = better & valid.unsqueeze(2) & valid.unsqueeze(1)
    losses = -F.logsigmoid(diff) * pair_ok
    return losses.sum(dim=(1, 2)) / pair_ok.sum(dim=(1, 2)).clamp(min=1)


# ---------------------------------------------------------------------------------------------------- Critic-RM
# Yu et al. 2024 (arXiv 2411.16646; docs/methods/critic_rm.md marks what is reconstructed): one model writes
# critiques (next-token loss) and scores (prompt, response, critique) with a scalar head (Bradley-Terry), the two
# losses mixed by a weight that moves from the critiques to the reward over training.


def critique_weight(step: int, total_steps: int, start: float, end: float, schedule: str = "linear") -> float:
    """λ(t), the weight of the critique loss at optimizer step `step` of `total_steps` (the reward loss gets 1 − λ):
    `start` at the first step to `end` at the last, along a straight line ("linear"), a half cosine ("cosine"), or
    `start` throughout ("constant")."""
    if schedule == "constant":
        return start
    progress = min(1.0, step / max(1, total_steps - 1))
    if schedule == "linear":
        return start + (end - start) * progress
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown critique-weight schedule '{schedule}'")


def critic_rm_loss(
    critique_token_logps: Tensor,
    chosen_rewards: Tensor,
    rejected_rewards: Tensor,
    weight: float,
    critique_tokens: float | None = None,
    n_pairs: float | None = None,
) -> Tensor:
    """λ·L_critique + (1 − λ)·L_RM, a 0-d tensor.

    L_critique is the mean of −log p over the critique tokens (`critique_token_logps`, every critique of the pairs);
    L_RM the mean over pairs of −log σ(r(x, y_w, z_w) − r(x, y_l, z_l)), each reward read after its critique.
    `critique_tokens` and `n_pairs` replace this call's counts (those of a whole optimizer step split in passes).
    """
    tokens = critique_token_logps.numel() if critique_tokens is None else critique_tokens
    pairs = chosen_rewards.numel() if n_pairs is None else n_pairs
    critique = -critique_token_logps.sum() / max(tokens, 1)
    reward = bradley_terry_loss(chosen_rewards, rejected_rewards).sum() / max(pairs, 1)
    return weight * critique + (1 - weight) * reward


def sft_loss(token_logps: Tensor, response_mask: Tensor, normalizer: float | None = None) -> Tensor:
    """Cross-entropy on response tokens only: mean of -log p over the tokens where `response_mask` is true.

    Token-level mean over the batch (every response token weighs the same), the convention of TRL and torchtune.
    `normalizer` replaces the token count of this call, e.g. by the response tokens of a whole optimizer step when
    a step is split into several passes. Returns a 0-d tensor.
    """
    mask = response_mask.to(token_logps.dtype)
    count = mask.sum().clamp(min=1) if normalizer is None else normalizer
    return -(token_logps * mask).sum() / count


# ---------------------------------------------------------------------------------------------------- CGPO


def crpg_rewards(constrained_rewards: Tensor, logratios: Tensor, kl_max: float) -> Tensor:
    """CRPG's KL-regularised reward R̃_cr = max(1 − log(π_w(a|s)/π_ref(a|s)) / KL_max, 0) · R_cr.

    `constrained_rewards` is R_cr: the calibrated reward where every judge passed and 0 where one failed. A response
    whose sequence log-ratio reaches KL_max earns nothing, which is what keeps the policy inside the KL budget.
    """
    return torch.clamp(1 - logratios / kl_max, min=0) * constrained_rewards


def crpg_advantages(
    constrained_rewards: Tensor, logratios: Tensor, kl_max: float, baseline: float | None = None
) -> Tensor:
    """R̃_cr minus its mean over the batch: the paper's REINFORCE baseline (no critic). Detached inputs.
    `baseline` replaces the mean of these rewards (the whole batch's mean when it is spread over processes)."""
    shaped = crpg_rewards(constrained_rewards, logratios, kl_max)
    return shaped - (shaped.mean() if baseline is None else baseline)


def crpg_loss(policy_logps: Tensor, advantages: Tensor) -> Tensor:
    """−(R̃_cr − mean R̃_cr) · log π_w(a|s) per response; its gradient, averaged, is −g of CGPO's CRPG update.

    Advantages are computed once per step over the whole batch (`crpg_advantages`), so the batch can go through
    the model in parts and still get the batch-mean baseline.
    """
    return -advantages.detach() * policy_logps


def codpo_loss(
    policy_chosen_logps: Tensor,
    policy_rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    chosen_lengths: Tensor,
    beta: float = 0.1,
    lam: float = 1.0,
) -> Tensor:
    """CODPO (CGPO eq. 14): −log σ(β·Δ) − (λ/|a⁺|)·log π_w(a⁺|s).

    The sign of the likelihood term is the one that *raises* the chosen likelihood (the text's intent; eq. 15's
    sign is inconsistent). The paper reports neither β nor λ. It is Llama 3's DPO + NLL with λ as the coefficient.
    """
    return dpo_nll_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_lengths, beta, lam
    )


def crraft_loss(policy_logps: Tensor, calibrated_rewards: Tensor) -> Tensor:
    """CRRAFT: −R_calib(s, a*) · log π_w(a*|s), calibrated-reward-weighted SFT on the selected response (sequence
    log-likelihood, not per token, as the paper's update writes it)."""
    return -calibrated_rewards.detach() * policy_logps


# ---------------------------------------------------------------------------------------------------- GRPO family
# Group-relative policy gradients on K responses per prompt (docs/methods/grpo.md). Advantages are computed once per
# rollout from rewards (no gradients); the clipped surrogate is per token; how per-token losses are summed into one
# number (`token_weights`) is the choice that separates GRPO, DAPO and Dr. GRPO.


def group_advantages(rewards: Tensor, groups: Tensor, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """GRPO (Shao et al. 2024, §4.1.2): r_i minus its group's mean, divided by the group's std (+ eps) if `scale`.

    `groups[i]` is the prompt of response i. The std is the unbiased one (TRL's `nanstd`); Dr. GRPO (Liu et al. 2025)
    drops the division (`scale=False`) because it up-weights prompts whose rewards barely differ.
    """
    n = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(n, dtype=rewards.dtype).index_add(0, groups, torch.ones_like(rewards))
    mean = torch.zeros(n, dtype=rewards.dtype).index_add(0, groups, rewards) / count.clamp(min=1)
    centred = rewards - mean[groups]
    if not scale:
        return centred
    var = torch.zeros(n, dtype=rewards.dtype).index_add(0, groups, centred**2) / (count - 1).clamp(min=1)
    return centred / (var.sqrt()[groups] + eps)


def rloo_advantages(rewards: Tensor, groups: Tensor) -> Tensor:
    """RLOO (Ahmadian et al. 2024): r_i minus the mean reward of the *other* responses to the same prompt,
    r_i − (Σ_j r_j − r_i)/(K − 1). A response alone in its group gets 0."""
    n = int(groups.max()) + 1 if groups.numel() else 0
    count = torch.zeros(n, dtype=rewards.dtype).index_add(0, groups, torch.ones_like(rewards))[groups]
    total = torch.zeros(n, dtype=rewards.dtype).index_add(0, groups, rewards)[groups]
    return torch.where(count > 1, rewards - (total - rewards) / (count - 1).clamp(min=1), torch.zeros_like(rewards))


def k3_kl(token_logps: Tensor, ref_token_logps: Tensor) -> Tensor:
    """Schulman's k3 estimator of KL(π‖π_ref) per token: exp(q − p) − (q − p) − 1 with p = log π, q = log π_ref
    (non-negative, unbiased for tokens sampled from π; GRPO's KL term)."""
    diff = ref_token_logps - token_logps
    return torch.exp(diff) - diff - 1


def reinforce_pp_returns(rewards: Tensor, token_seq: Tensor, token_kl: Tensor, kl_coef: float) -> Tensor:
    """REINFORCE++ (Hu 2025, arXiv 2501.03262) before normalisation: each token's return is its response's reward
    minus kl_coef times the KL estimates of this and every later token of the response (γ = 1, the reward on the
    last token). `token_seq[t]` is the response of token t (a response's tokens contiguous and in order);
    `token_kl` is the per-token log π_old − log π_ref (the k1 estimate the paper puts in the reward)."""
    penalty = -kl_coef * token_kl
    n = int(token_seq.max()) + 1 if token_seq.numel() else 0
    positions = torch.arange(len(token_seq))
    first = torch.zeros(n, dtype=torch.long).scatter_reduce(0, token_seq, positions, "amin", include_self=False)
    before = torch.cumsum(penalty, 0) - penalty  # Σ of the batch's earlier tokens
    within_before = before - before[first][token_seq]  # Σ of the same response's earlier tokens
    total = torch.zeros(n, dtype=penalty.dtype).index_add(0, token_seq, penalty)
    return rewards[token_seq] + total[token_seq] - within_before  # reward + Σ_{s ≥ t} penalty_s


def whiten(values: Tensor, mean: float, var: float, eps: float = 1e-8) -> Tensor:
    """(x − mean) / sqrt(var + eps): REINFORCE++'s normalisation over every token of the batch, with the batch's
    mean and population variance given (they span all processes)."""
    return (values - mean) * (var + eps) ** -0.5


def clipped_policy_loss(
    token_logps: Tensor, old_token_logps: Tensor, advantages: Tensor, eps_low: float, eps_high: float
) -> tuple[Tensor, Tensor]:
    """PPO's clipped surrogate per token, −min(ρ·A, clip(ρ, 1 − ε_low, 1 + ε_high)·A) with ρ = π/π_old, and which
    tokens the clip made inactive (ρ below 1 − ε_low with A < 0, or above 1 + ε_high with A > 0). ε_high > ε_low is
    DAPO's clip-higher. With one update per rollout ρ = 1 and the gradient is A·∇log π."""
    ratio = torch.exp(token_logps - old_token_logps.detach())
    advantages = advantages.detach()
    loss = -torch.min(ratio * advantages, torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages)
    clipped = ((ratio < 1 - eps_low) & (advantages < 0)) | ((ratio > 1 + eps_high) & (advantages > 0))
    return loss, clipped.detach()


def token_weights(
    lengths: Tensor, aggregation: str, max_tokens: int, n_total: float | None = None, tokens_total: float | None = None
) -> Tensor:
    """The weight of each token of each response in the summed loss, shape (n_responses,); `n_total` and
    `tokens_total` replace this batch's response and token counts (the whole batch's, spread over processes), for
    - "token": every token of the batch weighs the same, 1/Σ|o| (DAPO; TRL's "dapo"/"bnpo" on one batch);
    - "sequence": each response's token mean, then the mean over responses, 1/(n·|o_i|) (the GRPO paper; TRL "grpo");
    - "fixed": 1/(n·max_tokens), a constant, so no length bias either way (Dr. GRPO; TRL "dr_grpo")."""
    lengths = lengths.to(torch.float64)
    n = max(len(lengths) if n_total is None else n_total, 1)
    if aggregation == "token":
        tokens = float(lengths.sum()) if tokens_total is None else tokens_total
        return torch.full_like(lengths, 1.0 / max(tokens, 1.0))
    if aggregation == "sequence":
        return 1.0 / (n * lengths.clamp(min=1))
    if aggregation == "fixed":
        return torch.full_like(lengths, 1.0 / (n * max_tokens))
    raise ValueError(f"unknown loss aggregation '{aggregation}'")
