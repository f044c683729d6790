"""The TopK SAE: exactly k actives, training lowers reconstruction error, dead latents are counted and revived."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posttrain.errors import InputError
from posttrain.select.sae import SAEConfig, TopKSAE, evaluate_sae, load_sae, sae_loss, train_sae


def sparse_data(n: int = 4096, d: int = 32, atoms: int = 64, active: int = 3, seed: int = 0) -> np.ndarray:
    """Each row is a sum of `active` random dictionary atoms with positive weights: what a TopK SAE should recover."""
    rng = np.random.default_rng(seed)
    dictionary = rng.normal(size=(atoms, d))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    x = np.zeros((n, d))
    for i in range(n):
        idx = rng.choice(atoms, active, replace=False)
        x[i] = rng.uniform(0.5, 2.0, active) @ dictionary[idx]
    return (x * 7.0 + 3.0).astype(np.float32)  # off-centre and off-scale: normalisation must handle it


def stream(x: np.ndarray, batch: int):
    def batches(seed: int):
        perm = np.random.default_rng(seed).permutation(len(x))
        for s in range(0, len(x), batch):
            yield x[perm[s : s + batch]]

    return batches


@pytest.mark.parametrize("tied", [False, True])
def test_topk_keeps_exactly_k_nonnegative(tied: bool) -> None:
    torch.manual_seed(0)
    sae = TopKSAE(16, 64, 5, tied=tied)
    dense = sae.dense(torch.randn(50, 16) * 3)
    assert dense.shape == (50, 64)
    assert bool((dense >= 0).all())
    assert int((dense != 0).sum(1).max()) <= 5
    values, indices = sae.encode(torch.randn(50, 16))
    assert values.shape == indices.shape == (50, 5)
    assert all(len(set(row.tolist())) == 5 for row in indices)  # k distinct latents per row
    assert (sae.decoder is sae.W_enc) == tied


def test_training_lowers_reconstruction_error_and_normalises(tmp_path) -> None:
    x = sparse_data()
    cfg = SAEConfig(n_latents=128, k=4, steps=300, batch_size=256, lr=3e-3, warmup_steps=10, save_every=0,
                    dead_tokens=2048)  # fmt: skip
    torch.manual_seed(0)
    untrained = TopKSAE(32, 128, 4)
    untrained.fit_normalizer(torch.from_numpy(x[:256]))
    before = evaluate_sae(untrained, x)["nmse"]
    sae, report = train_sae(cfg, stream(x, 256), 32, tmp_path / "sae", progress=False)
    after = evaluate_sae(sae, x)["nmse"]
    assert after < 0.25 < before, (before, after)
    assert report.nmse < 0.25 and report.steps == 300
    # E||x/s||² = d after normalisation
    xn = torch.from_numpy(x) / sae.scale
    assert float(xn.pow(2).sum(1).mean()) == pytest.approx(32, rel=0.1)
    # decoder rows stay unit-norm
    assert torch.allclose(sae.decoder.norm(dim=1), torch.ones(128), atol=1e-4)
    # the saved checkpoint reloads to the same model
    again = load_sae(tmp_path / "sae" / "sae.pt")
    assert evaluate_sae(again, x)["nmse"] == pytest.approx(after, rel=1e-5)


def test_dead_latent_accounting(tmp_path) -> None:
    # Three distinct rows repeated: only a handful of latents are ever needed; most never fire and are dead.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8)).astype(np.float32)[rng.integers(0, 3, 512)]
    cfg = SAEConfig(
        n_latents=256, k=2, steps=20, batch_size=128, aux_coef=0.0, save_every=0, dead_tokens=1024
    )
    sae, report = train_sae(cfg, stream(x, 128), 8, tmp_path / "sae", progress=False)
    never = evaluate_sae(sae, x)["dead_fraction"]
    assert report.dead_fraction > 0.5
    assert never > 0.5
    assert report.dead_fraction <= 1.0 and abs(report.dead_fraction - never) < 0.1


def test_a_latent_in_the_top_k_at_zero_has_not_fired_in_evaluation() -> None:
    # Every pre-activation is negative, so the top k are all ReLU'd to 0: nothing fired, every latent is dead.
    torch.manual_seed(0)
    sae = TopKSAE(8, 32, 4)
    with torch.no_grad():
        sae.b_enc.fill_(-100.0)
    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    assert evaluate_sae(sae, x)["dead_fraction"] == 1.0


def test_a_latent_in_the_top_k_at_zero_has_not_fired_in_training(tmp_path) -> None:
    # One row of ones, repeated: after normalisation (s = 1, b_pre = that row) every pre-activation is exactly 0, the
    # loss and every gradient are 0, and the SAE never changes. TopK still picks k latents, but none fires.
    x = np.ones((256, 8), dtype=np.float32)
    cfg = SAEConfig(n_latents=64, k=4, steps=4, batch_size=64, aux_coef=0.0, save_every=0, dead_tokens=64)
    sae, report = train_sae(cfg, stream(x, 64), 8, tmp_path / "sae", progress=False)
    assert float(sae.pre_acts(torch.from_numpy(x)).detach().abs().max()) == 0.0  # the premise: none ever above 0
    assert report.dead_fraction == 1.0
    assert report.history[-1]["dead_fraction"] == 1.0  # the in-training figure, before the last step, agrees


def test_auxk_gives_gradient_to_dead_latents_only_through_the_aux_term() -> None:
    torch.manual_seed(0)
    sae = TopKSAE(8, 64, 2)
    x = torch.randn(32, 8)
    sae.fit_normalizer(x)
    _, indices = sae.encode(x)
    dead = torch.ones(64, dtype=torch.bool)
    dead[indices.flatten()] = False  # every latent that fires on this batch is alive, the rest dead
    assert int(dead.sum()) > 0
    grads = {}
    for coef in (0.0, 1 / 32):
        sae.zero_grad()
        loss, *_ = sae_loss(sae, x, dead, aux_k=4, aux_coef=coef)
        loss.backward()
        grads[coef] = sae.decoder.grad[dead].abs().sum().item()
    assert grads[0.0] == 0.0
    assert grads[1 / 32] > 0.0


def test_checkpoint_resume_matches_uninterrupted(tmp_path) -> None:
    x = sparse_data(n=1024, d=8, atoms=16, active=2, seed=2)
    cfg = SAEConfig(n_latents=32, k=2, steps=40, batch_size=64, save_every=20, lr=1e-3)
    full, _ = train_sae(cfg, stream(x, 64), 8, tmp_path / "full", progress=False)

    # Interrupt at step 25 (after the step-20 checkpoint), then rerun: it resumes from step 20.
    calls = {"n": 0}

    def flaky(seed: int):
        for batch in stream(x, 64)(seed):
            calls["n"] += 1
            if calls["n"] == 26:
                raise KeyboardInterrupt
            yield batch

    with pytest.raises(KeyboardInterrupt):
        train_sae(cfg, flaky, 8, tmp_path / "resumed", progress=False)
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    assert not (tmp_path / "resumed" / "sae.pt").exists()
    resumed, report = train_sae(cfg, stream(x, 64), 8, tmp_path / "resumed", progress=False)
    assert report.steps == 40
    assert not (tmp_path / "resumed" / "checkpoint.pt").exists()
    # The resumed run restarts its data stream at the checkpoint, so it is close to (not bit-identical with) the
    # uninterrupted one.
    assert evaluate_sae(resumed, x)["nmse"] == pytest.approx(evaluate_sae(full, x)["nmse"], rel=0.05)


def test_bad_config_is_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="sae.k"):
        train_sae(SAEConfig(n_latents=4, k=8), stream(np.zeros((4, 2), np.float32), 2), 2, tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_sae(tmp_path / "missing.pt")
