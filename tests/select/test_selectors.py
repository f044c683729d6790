"""Selectors: greedy maximises coverage, lazy == naive, SimScale hits the budget, dedup and k-center properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from posttrain.errors import InputError
from posttrain.select.features import FeatureSets
from posttrain.select.greedy import coverage, lazy_greedy, naive_greedy
from posttrain.select.report import mean_pairwise_cosine_distance, subset_report, vendi_score
from posttrain.select.selectors import (
    Inputs,
    SelectorConfig,
    _simscale_pass,
    kcenter,
    select,
    semdedup,
    simscale,
)


def random_sets(rng: np.random.Generator, n: int, latents: int, max_size: int) -> FeatureSets:
    return FeatureSets.from_lists(
        [rng.choice(latents, size=rng.integers(0, max_size + 1), replace=False) for _ in range(n)], latents
    )


def test_greedy_on_hand_made_case_reaches_the_brute_force_optimum() -> None:
    # The biggest set {0..5} is a trap: two smaller sets cover 8 features together, greedy-by-size would get 6+2.
    sets = [[0, 1, 2, 3, 4, 5], [0, 1, 2, 6, 7], [3, 4, 5, 8, 9], [6], [0, 9]]
    fs = FeatureSets.from_lists(sets, 10)
    best = max(coverage(fs, c) for c in itertools.combinations(range(5), 2))
    assert best == 10
    picks = lazy_greedy(fs, 3)
    assert picks[0] == 0  # most features first
    assert coverage(fs, picks) == 10  # then the two that add most: all ten features with three picks
    # Greedy's (1 - 1/e) guarantee against brute force on random small instances.
    rng = np.random.default_rng(1)
    for _ in range(30):
        fs = random_sets(rng, 9, 20, 6)
        for b in (1, 2, 3):
            opt = max(coverage(fs, c) for c in itertools.combinations(range(fs.n), b))
            got = coverage(fs, lazy_greedy(fs, b))
            assert got >= (1 - 1 / np.e) * opt - 1e-9
            if b == 1:
                assert got == opt


@pytest.mark.parametrize("seed", range(5))
def test_lazy_greedy_equals_naive_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    fs = random_sets(rng, int(rng.integers(50, 300)), int(rng.integers(20, 200)), 15)
    budget = int(rng.integers(1, fs.n + 1))  # large budgets exercise the coverage restart too
    assert lazy_greedy(fs, budget) == naive_greedy(fs, budget)
    picks = lazy_greedy(fs, budget)
    assert len(picks) == len(set(picks)) == budget


def test_greedy_handles_empty_sets_and_full_budget() -> None:
    fs = FeatureSets.from_lists([[], [1], [], [1, 2]], 3)
    # {1,2} first; then nothing adds coverage -> restart -> {1}; then only empty sets, in index order.
    assert lazy_greedy(fs, 4) == naive_greedy(fs, 4) == [3, 1, 0, 2]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = len(np.union1d(a, b))
    return len(np.intersect1d(a, b)) / union if union else 1.0


@pytest.mark.parametrize("budget", [1, 7, 40, 120])
def test_simscale_hits_budget_and_respects_tau(budget: int) -> None:
    rng = np.random.default_rng(3)
    fs = random_sets(rng, 150, 60, 12)
    sel = simscale(fs, budget, None, SelectorConfig())
    assert len(sel.picks) == len(set(sel.picks)) == budget
    tau = sel.info["tau"]
    for a, b in itertools.combinations(sel.picks, 2):
        assert jaccard(fs.row(a), fs.row(b)) < tau + 1e-6
    # A slightly smaller τ no longer fills the budget (τ is the smallest that does, up to the bisection step).
    if tau > 0.01:
        order = np.lexsort((np.arange(fs.n), -fs.sizes()))
        assert len(_simscale_pass(fs, order, tau - 0.01, budget)) < budget


def test_semdedup_keeps_nothing_above_threshold() -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(5, 16))
    emb = np.repeat(centres, 30, axis=0) + rng.normal(0, 0.3, (150, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    quality, difficulty = rng.uniform(size=150), rng.uniform(size=150)
    cfg = SelectorConfig(semdedup_clusters=1, semdedup_threshold=0.8)
    sel = semdedup(emb, None, quality, difficulty, cfg)
    kept = np.array(sel.picks)
    sims = emb[kept] @ emb[kept].T
    np.fill_diagonal(sims, -1)
    assert sims.max() < 0.8
    # Maximal: every dropped example is near some kept one that ranks above it.
    dropped = np.setdiff1d(np.arange(150), kept)
    assert (emb[dropped] @ emb[kept].T).max(1).min() >= 0.8
    # With a budget: exactly the budget, best by quality × difficulty among the survivors.
    sel = semdedup(emb, 20, quality, difficulty, SelectorConfig(semdedup_clusters=3))
    assert len(sel.picks) == 20
    scores = (quality * difficulty)[sel.picks]
    assert list(scores) == sorted(scores, reverse=True)


def test_kcenter_is_farthest_first_and_2_approximate() -> None:
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(12, 3))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    dist = 1 - emb @ emb.T

    def radius(centres) -> float:
        return float(dist[:, list(centres)].min(1).max())

    picks = kcenter(emb, 4)
    assert len(set(picks)) == 4
    for t in range(1, 4):  # each pick is the point farthest from the centres before it
        d = dist[:, picks[:t]].min(1)
        assert d[picks[t]] == pytest.approx(d.max())
    opt = min(radius(c) for c in itertools.combinations(range(12), 4))
    assert (
        radius(picks) <= 2 * opt + 1e-9
    )  # Gonzalez's bound (cosine distance is close enough to a metric here)


def test_random_longest_and_dispatch_errors() -> None:
    lengths = np.array([5, 50, 10, 50, 1])
    inputs = Inputs(n=5, lengths=lengths)
    assert select("longest", 3, inputs).picks == [1, 3, 2]
    r = select("random", 3, inputs, SelectorConfig(seed=7)).picks
    assert r == select("random", 3, inputs, SelectorConfig(seed=7)).picks and len(set(r)) == 3
    with pytest.raises(InputError, match="unknown selection method"):
        select("bogus", 3, inputs)
    with pytest.raises(InputError, match="pool size"):
        select("random", 6, inputs)
    with pytest.raises(InputError, match="needs SAE feature sets"):
        select("sae-greedy", 2, inputs)


def test_report_metrics() -> None:
    same = np.tile([[1.0, 0.0, 0.0]], (4, 1))
    ortho = np.eye(3)
    assert mean_pairwise_cosine_distance(same) == pytest.approx(0.0, abs=1e-9)
    assert mean_pairwise_cosine_distance(ortho) == pytest.approx(1.0)
    assert vendi_score(same) == pytest.approx(1.0)
    assert vendi_score(ortho) == pytest.approx(3.0)
    fs = FeatureSets.from_lists([[0, 1], [1, 2], [3]], 4)
    rep = subset_report([0, 2], np.array([10, 20, 30]), fs, ortho)
    assert rep["features"] == {"covered": 3, "pool": 4, "fraction": 0.75, "mean_per_example": 1.5}
    assert rep["length"]["max"] == 30
