"""Every selector behind one call: `select(method, budget, inputs, cfg) -> Selection`.

- sae-greedy     SAE-GreedSelect, max new-feature coverage per pick (greedy.py, lazy)
- sae-simscale   SAE-SimScale: walk examples by feature count, keep one if its max Jaccard similarity to the kept
                 set is < τ; τ found by bisection as the smallest that fills the budget (Yang et al.; UNVERIFIED)
- random         uniform without replacement, seeded
- longest        longest responses first (the strong baseline of Yang et al.: features grow with length, r = 0.92)
- kcenter        farthest-first traversal on embeddings (Gonzalez 1985): a 2-approximation of the k-center radius
- semdedup       Llama 3's semantic dedup (§4.2.3): cluster embeddings, sort each cluster by quality × difficulty,
                 keep an example if its max cosine to the kept examples of its cluster is < threshold. Llama 3
                 gives no threshold and no budget; to compare at equal size we bisect the threshold to the smallest
                 that keeps >= budget and keep the budget best by quality × difficulty (our choice).

Picks come back in selection order (rank); `Selection.info` says what was tuned (τ, threshold, restarts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from posttrain.errors import InputError
from posttrain.select.features import FeatureSets
from posttrain.select.greedy import lazy_greedy

METHODS = ("sae-greedy", "sae-simscale", "random", "longest", "kcenter", "semdedup")
NEEDS_FEATURES = ("sae-greedy", "sae-simscale")
NEEDS_EMBEDDINGS = ("kcenter", "semdedup")


@dataclass
class SelectorConfig:
    seed: int = 0
    simscale_order: Literal["features", "length"] = "features"  # the walk order (longest first either way)
    simscale_tau: float | None = (
        None  # fixed τ (may return fewer than the budget); None: bisect to the budget
    )
    semdedup_clusters: int | None = None  # None: about sqrt(n / 2), at least 1
    semdedup_threshold: float | None = None  # fixed cosine threshold; None: bisect to the budget
    bisect_steps: int = 14


@dataclass
class Selection:
    method: str
    picks: list[int]
    info: dict[str, Any] = field(default_factory=dict)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"unknown selection method '{method}'; choose one of {', '.join(METHODS)}")


# ---------------------------------------------------------------------------------------------------- SAE-SimScale


def _simscale_pass(fs: FeatureSets, order: np.ndarray, tau: float, limit: int) -> list[int]:
    """Keep an example when max_j |A ∩ B_j| / |A ∪ B_j| < tau over kept B_j; stop at `limit` kept."""
    # Column m of `owner` marks the features of the m-th kept example: a candidate's intersections with every
    # kept example are one gather and one column sum, O(|A| × kept) bytes.
    owner = np.zeros((fs.n_latents, limit), dtype=bool)
    sizes = fs.sizes()
    kept_sizes = np.zeros(limit, dtype=np.int64)
    kept: list[int] = []
    for i in order:
        row = fs.row(int(i))
        m = len(kept)
        if m:
            inter = np.count_nonzero(owner[row, :m], axis=0)
            union = row.size + kept_sizes[:m] - inter
            jaccard = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
            if jaccard.max() >= tau:
                continue
        owner[row, m] = True
        kept_sizes[m] = sizes[i]
        kept.append(int(i))
        if len(kept) == limit:
            break
    return kept


def simscale(fs: FeatureSets, budget: int, lengths: np.ndarray | None, cfg: SelectorConfig) -> Selection:
    key = fs.sizes() if cfg.simscale_order == "features" or lengths is None else lengths
    order = np.lexsort((np.arange(fs.n), -np.asarray(key)))  # largest first, ties by index
    if cfg.simscale_tau is not None:
        return Selection("sae-simscale", _simscale_pass(fs, order, cfg.simscale_tau, budget),
                         {"tau": cfg.simscale_tau})  # fmt: skip
    # More permissive τ keeps more; bisect for the smallest τ that still fills the budget (most diverse subset).
    lo, hi = 0.0, 1.0 + 1e-9
    best = _simscale_pass(fs, order, hi, budget)
    for _ in range(cfg.bisect_steps):
        mid = (lo + hi) / 2
        kept = _simscale_pass(fs, order, mid, budget)
        if len(kept) >= budget:
            hi, best = mid, kept
        else:
            lo = mid
    return Selection("sae-simscale", best, {"tau": round(hi, 6)})


# ---------------------------------------------------------------------------------------------------- baselines


def random_select(n: int, budget: int, seed: int) -> list[int]:
    return [int(i) for i in np.random.default_rng(seed).choice(n, size=budget, replace=False)]


def longest(lengths: np.ndarray, budget: int) -> list[int]:
    return [int(i) for i in np.lexsort((np.arange(len(lengths)), -np.asarray(lengths)))[:budget]]


def kcenter(emb: np.ndarray, budget: int) -> list[int]:
    """Farthest-first traversal under cosine distance (rows L2-normalised). The first centre is the example
    farthest from the mean, so the result does not depend on input order."""
    emb = np.asarray(emb, dtype=np.float32)
    mean = emb.mean(0)
    first = int(np.argmin(emb @ mean))
    picks = [first]
    dist = 1.0 - emb @ emb[first]
    dist[first] = -np.inf
    while len(picks) < budget:
        i = int(np.argmax(dist))
        picks.append(i)
        dist = np.minimum(dist, 1.0 - emb @ emb[i])
        dist[picks] = -np.inf
    return picks


def kmeans(emb: np.ndarray, k: int, seed: int = 0, iters: int = 20) -> np.ndarray:
    """Spherical k-means (cosine) with k-means++ seeding; returns a cluster id per row."""
    emb = np.asarray(emb, dtype=np.float32)
    n = len(emb)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(n))]
    d2 = np.maximum(0.0, 2 - 2 * emb @ emb[centres[0]])
    for _ in range(1, k):
        total = d2.sum()
        c = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centres.append(c)
        d2 = np.minimum(d2, np.maximum(0.0, 2 - 2 * emb @ emb[c]))
    cent = emb[centres].copy()
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        new = np.argmax(emb @ cent.T, axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            members = emb[labels == c]
            if len(members):
                v = members.sum(0)
                cent[c] = v / max(float(np.linalg.norm(v)), 1e-12)
    return labels


def _semdedup_pass(emb: np.ndarray, clusters: list[np.ndarray], threshold: float) -> list[int]:
    kept: list[int] = []
    for members in clusters:  # each already sorted by quality × difficulty, best first
        local: list[int] = []
        for i in members:
            if local and float(np.max(emb[local] @ emb[i])) >= threshold:
                continue
            local.append(int(i))
        kept.extend(local)
    return kept


def semdedup(
    emb: np.ndarray, budget: int | None, quality: np.ndarray, difficulty: np.ndarray, cfg: SelectorConfig
) -> Selection:
    emb = np.asarray(emb, dtype=np.float32)
    n = len(emb)
    k = cfg.semdedup_clusters or max(1, int(round(np.sqrt(n / 2))))
    labels = kmeans(emb, k, cfg.seed)
    score = np.asarray(quality, dtype=np.float64) * np.asarray(difficulty, dtype=np.float64)
    rank = np.lexsort((np.arange(n), -score))  # best first, ties by index
    clusters = [rank[labels[rank] == c] for c in range(int(labels.max()) + 1)]
    info: dict[str, Any] = {"clusters": len(clusters)}
    if cfg.semdedup_threshold is not None or budget is None:
        threshold = cfg.semdedup_threshold if cfg.semdedup_threshold is not None else 0.9
        kept = _semdedup_pass(emb, clusters, threshold)
    else:
        lo, hi = -1.0, 1.0 + 1e-6  # cosine in [-1, 1]: at hi everything is kept
        kept = _semdedup_pass(emb, clusters, hi)
        for _ in range(cfg.bisect_steps):
            mid = (lo + hi) / 2
            got = _semdedup_pass(emb, clusters, mid)
            if len(got) >= budget:
                hi, kept = mid, got
            else:
                lo = mid
        threshold = hi
    info["threshold"] = round(float(threshold), 6)
    info["kept_before_budget"] = len(kept)
    order = sorted(kept, key=lambda i: (-score[i], i))
    return Selection("semdedup", order[:budget] if budget is not None else order, info)


# ---------------------------------------------------------------------------------------------------- dispatch


@dataclass
class Inputs:
    n: int
    features: FeatureSets | None = None
    embeddings: np.ndarray | None = None
    lengths: np.ndarray | None = None
    quality: np.ndarray | None = None
    difficulty: np.ndarray | None = None


def select(method: str, budget: int, inputs: Inputs, cfg: SelectorConfig | None = None) -> Selection:
    cfg = cfg or SelectorConfig()
    check_method(method)
    if budget < 1 or budget > inputs.n:
        raise InputError(f"budget must be between 1 and the pool size {inputs.n}, got {budget}")
    if method in NEEDS_FEATURES and inputs.features is None:
        raise InputError(f"method '{method}' needs SAE feature sets")
    if method in NEEDS_EMBEDDINGS and inputs.embeddings is None:
        raise InputError(f"method '{method}' needs embeddings")
    ones = np.ones(inputs.n)
    if method == "sae-greedy":
        assert inputs.features is not None
        return Selection(method, lazy_greedy(inputs.features, budget))
    if method == "sae-simscale":
        assert inputs.features is not None
        return simscale(inputs.features, budget, inputs.lengths, cfg)
    if method == "random":
        return Selection(method, random_select(inputs.n, budget, cfg.seed), {"seed": cfg.seed})
    if method == "longest":
        if inputs.lengths is None:
            raise InputError("method 'longest' needs lengths")
        return Selection(method, longest(inputs.lengths, budget))
    if method == "kcenter":
        assert inputs.embeddings is not None
        return Selection(method, kcenter(inputs.embeddings, budget))
    assert inputs.embeddings is not None
    quality = inputs.quality if inputs.quality is not None else ones
    difficulty = inputs.difficulty if inputs.difficulty is not None else ones
    return semdedup(inputs.embeddings, budget, quality, difficulty, cfg)
