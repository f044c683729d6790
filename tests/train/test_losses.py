"""Each loss against a value computed by hand, and DPO / IPO against TRL's own loss code on the same log-probs."""

from __future__ import annotations

import math

import pytest
import torch

from posttrain.train import losses
from tests.assets import import_or_missing


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# policy chosen/rejected, reference chosen/rejected: margin = (-10 + 12) - (-20 + 15) = 7
PC, PR, RC, RR = t(-10.0), t(-20.0), t(-12.0), t(-15.0)


def test_dpo_sigmoid_by_hand():
    assert losses.dpo_loss(PC, PR, RC, RR, beta=0.1).item() == pytest.approx(-log_sigmoid(0.7))
    assert losses.dpo_loss(RC, RR, RC, RR, beta=0.1).item() == pytest.approx(math.log(2))  # policy == reference


def test_conservative_dpo_by_hand():
    expected = -0.9 * log_sigmoid(0.7) - 0.1 * log_sigmoid(-0.7)
    assert losses.dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.1).item() == pytest.approx(expected)


def test_ipo_by_hand():
    # per-token log-ratios: chosen 2/4 = 0.5, rejected -5/10 = -0.5, h = 1; (1 - 1/(2*0.5))^2 = 0
    assert losses.ipo_loss(PC, PR, RC, RR, t(4), t(10), beta=0.5).item() == pytest.approx(0.0)
    # beta 0.1: (1 - 5)^2 = 16
    assert losses.ipo_loss(PC, PR, RC, RR, t(4), t(10), beta=0.1).item() == pytest.approx(16.0)


def test_dpo_nll_llama3_by_hand():
    # chosen NLL normalised by length: 10 / 5 = 2, times 0.2
    expected = -log_sigmoid(0.7) + 0.2 * 2.0
    assert losses.dpo_nll_loss(PC, PR, RC, RR, t(5), beta=0.1, nll_coef=0.2).item() == pytest.approx(expected)
    assert losses.chosen_nll(t(-10.0, -6.0), t(5, 0)).tolist() == pytest.approx([2.0, 6.0])  # length 0 -> 1


def test_dpo_positive_by_hand():
    # policy chosen above reference: no penalty, plain DPO
    assert losses.dpop_loss(PC, PR, RC, RR, beta=0.1, lam=50).item() == pytest.approx(-log_sigmoid(0.7))
    # policy chosen 1 nat below reference: margin (-13+12) - (-20+15) = 4, penalty 50 * 1
    value = losses.dpop_loss(t(-13.0), PR, RC, RR, beta=0.1, lam=50).item()
    assert value == pytest.approx(-log_sigmoid(0.1 * (4 - 50)))


def test_bradley_terry_by_hand():
    assert losses.bradley_terry_loss(t(2.0), t(0.5)).item() == pytest.approx(-log_sigmoid(1.5))
    assert losses.bradley_terry_loss(t(2.0), t(0.5), margin=t(1.0)).item() == pytest.approx(-log_sigmoid(0.5))


def test_ranked_bradley_terry_reduces_to_pairwise_and_averages_three():
    two = losses.ranked_bradley_terry_loss(t(2.0, 0.5).unsqueeze(0), torch.tensor([[True, True]]))
    assert two.item() == pytest.approx(-log_sigmoid(1.5))
    rewards = t(3.0, 2.0, 0.5, 9.9).unsqueeze(0)  # last one absent
    three = losses.ranked_bradley_terry_loss(rewards, torch.tensor([[True, True, True, False]]))
    expected = -(log_sigmoid(1.0) + log_sigmoid(2.5) + log_sigmoid(1.5)) / 3
    assert three.item() == pytest.approx(expected)


def test_sft_loss_counts_response_tokens_only():
    token_logps = t(-1.0, -2.0, -3.0, -100.0)
    mask = torch.tensor([True, True, True, False])
    assert losses.sft_loss(token_logps, mask).item() == pytest.approx(2.0)
    assert losses.sft_loss(token_logps, mask, normalizer=6).item() == pytest.approx(1.0)


def test_implicit_rewards():
    chosen, rejected = losses.implicit_rewards(PC, PR, RC, RR, beta=0.1)
    assert chosen.item() == pytest.approx(0.2) and rejected.item() == pytest.approx(-0.5)


# ---------------------------------------------------------------------------------------------------- TRL parity


def trl_loss(loss_type: str, per_token_logps: torch.Tensor, mask: torch.Tensor, ref: torch.Tensor, beta: float):
    """TRL's DPOTrainer._compute_loss run on given per-token log-probs (batch = [chosen..., rejected...]).

    The trainer object is bypassed (its loss code reads a few attributes and the model's fused-head outputs), so
    what runs is TRL's own loss arithmetic on exactly these log-probs.
    """
    from collections import defaultdict
    from types import SimpleNamespace

    import_or_missing("trl", "pip install --no-deps trl")  # the parity reference: fails under CI=true if absent
    from accelerate import Accelerator
    from trl import DPOTrainer

    n2, seq = per_token_logps.shape
    outputs = SimpleNamespace(
        log_probs=per_token_logps * mask[:, 1:],
        entropy=torch.zeros(n2, seq),
        mean_logits=torch.zeros(n2, seq),
        is_top1=torch.zeros(n2, seq, dtype=torch.bool),
    )
    model = SimpleNamespace(training=True)
    fake = SimpleNamespace(
        model=model,
        accelerator=Accelerator(cpu=True),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
        label_smoothing=0.0,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(n2, seq + 1, dtype=torch.long),
        "attention_mask": torch.ones(n2, seq + 1, dtype=torch.long),
        "completion_mask": mask,
        "ref_chosen_logps": ref[: n2 // 2],
        "ref_rejected_logps": ref[n2 // 2 :],
    }
    return DPOTrainer._compute_loss(fake, lambda **kw: outputs, inputs, False)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_and_ipo_match_trl(loss_type):
    torch.manual_seed(0)
    n, seq = 3, 7
    per_token = -torch.rand(2 * n, seq, dtype=torch.float64) * 3
    mask = torch.zeros(2 * n, seq + 1, dtype=torch.long)
    for row, length in enumerate([3, 7, 5, 2, 6, 4]):
        mask[row, seq + 1 - length :] = 1  # completion at the end, prompt before it
    ref = -torch.rand(2 * n, dtype=torch.float64) * 10
    beta = 0.1
    expected = trl_loss(loss_type, per_token, mask, ref, beta)

    logps = (per_token * mask[:, 1:]).sum(dim=1)
    lengths = mask[:, 1:].sum(dim=1).double()
    if loss_type == "sigmoid":
        ours = losses.dpo_loss(logps[:n], logps[n:], ref[:n], ref[n:], beta)
    else:
        ours = losses.ipo_loss(logps[:n], logps[n:], ref[:n], ref[n:], lengths[:n], lengths[n:], beta)
    assert ours.mean().item() == pytest.approx(float(expected), rel=1e-9)


# ---------------------------------------------------------------------------------------------------- CGPO


def test_crpg_rewards_by_hand_and_kl_cap():
    # R_cr 0.8 with log-ratio 2, KL_max 8: (1 - 2/8) * 0.8 = 0.6; a violated response (R_cr 0) stays 0 at any ratio;
    # log-ratio at or beyond KL_max earns nothing; a negative log-ratio scales the reward up (1 + 4/8).
    shaped = losses.crpg_rewards(t(0.8, 0.0, 0.8, 0.8, 0.8), t(2.0, -4.0, 8.0, 20.0, -4.0), kl_max=8.0)
    assert shaped.tolist() == pytest.approx([0.6, 0.0, 0.0, 0.0, 1.2])


def test_crpg_advantages_and_loss_by_hand():
    adv = losses.crpg_advantages(t(0.8, 0.0, 0.4), t(0.0, 0.0, 0.0), kl_max=1.0)
    assert adv.tolist() == pytest.approx([0.4, -0.4, 0.0])  # mean 0.4
    assert losses.crpg_loss(t(-3.0, -5.0, -1.0), adv).tolist() == pytest.approx([1.2, -2.0, 0.0])


def test_codpo_by_hand():
    # DPO margin 7 at beta 0.1, plus lam * (10 / 5)
    assert losses.codpo_loss(PC, PR, RC, RR, t(5), beta=0.1, lam=0.5).item() == pytest.approx(-log_sigmoid(0.7) + 1.0)


def test_crraft_by_hand():
    assert losses.crraft_loss(t(-4.0, -2.0), t(0.5, 0.75)).tolist() == pytest.approx([2.0, 1.5])


# ---------------------------------------------------------------------------------------------------- mDPO / mIPO
# Two groups of K = 2 (chosen i and rejected i in group GROUPS[i]).
# Group 0: log-ratios chosen (-10+11, -12+12) = (1, 0), mean 0.5; rejected (-20+19, -15+16) = (-1, 1), mean 0.
# Group 1: chosen (-5+8, -9+8) = (3, -1), mean 1; rejected (-30+27, -6+7) = (-3, 1), mean -1.
GROUPS = torch.tensor([0, 0, 1, 1])
G_PC, G_RC = t(-10.0, -12.0, -5.0, -9.0), t(-11.0, -12.0, -8.0, -8.0)
G_PR, G_RR = t(-20.0, -15.0, -30.0, -6.0), t(-19.0, -16.0, -27.0, -7.0)
# Per-token averages with these lengths: group 0 chosen (1/2, 0/1), rejected (-1/4, 1/2); group 1 chosen (3/3, -1/1),
# rejected (-3/3, 1/1).
G_LC, G_LR = t(2, 1, 3, 1), t(4, 2, 3, 1)


def test_mdpo_by_hand():
    # group margins 0.5 - 0 = 0.5 and 1 - (-1) = 2, beta 0.5
    value = losses.mdpo_loss(G_PC, G_PR, G_RC, G_RR, GROUPS, beta=0.5)
    assert value.tolist() == pytest.approx([-log_sigmoid(0.25), -log_sigmoid(1.0)])
    # pairwise DPO on the same responses is a different loss: it compares (1 vs -1) and (0 vs 1), not the means
    pairwise = losses.dpo_loss(G_PC[:2], G_PR[:2], G_RC[:2], G_RR[:2], beta=0.5).mean().item()
    assert pairwise == pytest.approx((-log_sigmoid(1.0) - log_sigmoid(-0.5)) / 2)
    smoothed = losses.mdpo_loss(G_PC, G_PR, G_RC, G_RR, GROUPS, beta=0.5, label_smoothing=0.1)[0].item()
    assert smoothed == pytest.approx(-0.9 * log_sigmoid(0.25) - 0.1 * log_sigmoid(-0.25))


def test_mipo_by_hand():
    # h: group 0 (1/2 + 0)/2 - (-1/4 + 1/2)/2 = 0.25 - 0.125 = 0.125; group 1 0 - 0 = 0. beta 0.5: 1/(2 beta) = 1
    value = losses.mipo_loss(G_PC, G_PR, G_RC, G_RR, G_LC, G_LR, GROUPS, beta=0.5)
    assert value.tolist() == pytest.approx([(0.125 - 1) ** 2, 1.0])


def test_mipo_unbiased_by_hand():
    # Var of a group mean = sample variance (÷ K-1) / K. Group 0: chosen (0.5, 0) -> 0.125 / 2 = 0.0625; rejected
    # (-0.25, 0.5) -> 0.28125 / 2 = 0.140625. Group 1: chosen (1, -1) -> 2 / 2 = 1; rejected (-1, 1) -> 1.
    value = losses.mipo_loss(G_PC, G_PR, G_RC, G_RR, G_LC, G_LR, GROUPS, beta=0.5, unbiased=True)
    assert value.tolist() == pytest.approx([0.765625 - 0.0625 - 0.140625, 1.0 - 1.0 - 1.0])  # can go below 0


def test_mipo_unbiased_estimates_the_square_of_expectations():
    # Per-token log-ratios drawn with means 0.3 (chosen) and -0.2 (rejected), sd 1 and 2; target (0.5 - 1)^2 = 0.25.
    # The plain estimator overshoots by Var(mean_w) + Var(mean_l) = (1 + 4) / 3 with K = 3.
    gen = torch.Generator().manual_seed(0)
    g, k = 40_000, 3
    chosen = 0.3 + torch.randn(g * k, generator=gen, dtype=torch.float64)
    rejected = -0.2 + 2 * torch.randn(g * k, generator=gen, dtype=torch.float64)
    groups, zeros, ones = torch.arange(g).repeat_interleave(k), torch.zeros(g * k, dtype=torch.float64), t(1)
    plain = losses.mipo_loss(chosen, rejected, zeros, zeros, ones, ones, groups, beta=0.5)
    unbiased = losses.mipo_loss(chosen, rejected, zeros, zeros, ones, ones, groups, beta=0.5, unbiased=True)
    assert unbiased.mean().item() == pytest.approx(0.25, abs=0.05)
    assert plain.mean().item() == pytest.approx(0.25 + 5 / 3, abs=0.05)


def test_with_one_response_per_side_mdpo_and_mipo_are_dpo_and_ipo():
    gen = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (-10 * torch.rand(5, generator=gen, dtype=torch.float64) for _ in range(4))
    lc, lr = t(3, 1, 7, 2, 5), t(4, 4, 1, 9, 2)
    groups = torch.arange(5)
    assert losses.mdpo_loss(pc, pr, rc, rr, groups, 0.3).tolist() == pytest.approx(
        losses.dpo_loss(pc, pr, rc, rr, 0.3).tolist(), rel=1e-12
    )
    assert losses.mdpo_loss(pc, pr, rc, rr, groups, 0.3, label_smoothing=0.2).tolist() == pytest.approx(
        losses.dpo_loss(pc, pr, rc, rr, 0.3, label_smoothing=0.2).tolist(), rel=1e-12
    )
    for unbiased in (False, True):  # a group of one has no spread to correct for
        assert losses.mipo_loss(pc, pr, rc, rr, lc, lr, groups, 0.3, unbiased).tolist() == pytest.approx(
            losses.ipo_loss(pc, pr, rc, rr, lc, lr, 0.3).tolist(), rel=1e-12
        )


def test_groups_of_different_sizes_in_one_call_are_independent():
    # group 0 holds one pair (the first of GROUPS' group 0), group 1 the three others
    groups = torch.tensor([0, 1, 1, 1])
    together = losses.mdpo_loss(G_PC, G_PR, G_RC, G_RR, groups, beta=0.5)
    assert together[0].item() == pytest.approx(losses.dpo_loss(G_PC[:1], G_PR[:1], G_RC[:1], G_RR[:1], 0.5).item())
    alone = losses.mdpo_loss(G_PC[1:], G_PR[1:], G_RC[1:], G_RR[1:], torch.zeros(3, dtype=torch.long), beta=0.5)
    assert together[1].item() == pytest.approx(alone.item())
