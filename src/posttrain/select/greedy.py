"""SAE-GreedSelect: pick, one at a time, the example that adds the most not-yet-covered SAE features
(Yang et al. 2025, arXiv 2502.14050; the paper's exact procedure is UNVERIFIED, see docs/methods/select.md).

    pick_t = argmax_i |F(i) \\ (F(pick_1) ∪ … ∪ F(pick_{t-1}))|        ties -> the lower example index

Coverage is a monotone submodular function, so an example's gain can only shrink as picks are added. Lazy greedy
(Minoux 1978) uses that: a max-heap holds each example's last computed gain as an upper bound; the top is
recomputed, and if it still beats the next bound it is the true argmax. Each pick then touches a handful of
examples instead of all n, and the result is identical to the naive greedy (same tie-breaking, tested).

When every remaining example's gain is 0 (all reachable features covered) before the budget is filled, coverage is
reset and greedy continues on the rest, so the fill still prefers feature-rich, mutually different examples. This
restart is our choice, not the paper's (UNVERIFIED).
"""

from __future__ import annotations

import heapq

import numpy as np

from posttrain.select.features import FeatureSets


def lazy_greedy(fs: FeatureSets, budget: int) -> list[int]:
    """Max-coverage greedy with lazy evaluation; O(n log n + picks × re-evaluations × features per example)."""
    budget = min(budget, fs.n)
    covered = np.zeros(fs.n_latents, dtype=bool)
    indptr, indices = fs.indptr, fs.indices
    taken = np.zeros(fs.n, dtype=bool)
    picks: list[int] = []
    heap = [(-int(g), i) for i, g in enumerate(fs.sizes())]
    heapq.heapify(heap)
    while len(picks) < budget:
        _, i = heapq.heappop(heap)
        row = indices[indptr[i] : indptr[i + 1]]
        gain = int(row.size - np.count_nonzero(covered[row]))
        if heap and (-gain, i) > heap[0]:
            heapq.heappush(heap, (-gain, i))  # a stale bound may still beat it: look again
            continue
        # Fresh (gain, index) beats the best stale bound -> it beats every true gain too (bounds only shrink).
        if gain == 0 and covered.any():
            # Nothing left adds coverage: restart on the remaining examples (see module docstring).
            covered[:] = False
            heap = [(-int(indptr[j + 1] - indptr[j]), int(j)) for j in np.flatnonzero(~taken)]
            heapq.heapify(heap)
            continue
        picks.append(i)
        taken[i] = True
        covered[row] = True
    return picks


def naive_greedy(fs: FeatureSets, budget: int) -> list[int]:
    """The straightforward greedy: recompute every remaining example's gain at every pick (vectorised numpy).
    The peer of `lazy_greedy` in tests and bench/select_speed.py; same picks, O(picks × total features)."""
    budget = min(budget, fs.n)
    covered = np.zeros(fs.n_latents, dtype=bool)
    taken = np.zeros(fs.n, dtype=bool)
    row_of = np.repeat(np.arange(fs.n), fs.sizes())
    picks: list[int] = []
    while len(picks) < budget:
        gains = fs.sizes() - np.bincount(row_of, weights=covered[fs.indices], minlength=fs.n).astype(np.int64)
        gains[taken] = -1
        i = int(np.argmax(gains))  # argmax returns the first maximum: the lower index wins ties
        if gains[i] == 0 and covered.any():
            covered[:] = False
            continue
        picks.append(i)
        taken[i] = True
        covered[fs.row(i)] = True
    return picks


def coverage(fs: FeatureSets, picks: list[int] | np.ndarray) -> int:
    """Unique features covered by `picks`."""
    if len(picks) == 0:
        return 0
    return int(np.unique(np.concatenate([fs.row(int(i)) for i in picks])).size)
