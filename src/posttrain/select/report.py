"""What a subset looks like: feature coverage, length distribution, and embedding diversity.

- coverage: unique SAE features the subset covers, and that as a fraction of the pool's unique features
  (the quantity SAE-GreedSelect maximises).
- lengths: response characters, min / p10 / median / mean / p90 / max.
- mean pairwise cosine distance of the subset's embeddings (1 - cosine, over all pairs; a random sample of 2,000
  rows when the subset is larger, so the cost stays bounded).
- Vendi score (Friedman & Dieng 2023) with the cosine kernel: exp of the entropy of the eigenvalues of K/m.
  For unit vectors the non-zero eigenvalues of K/m = XXᵀ/m equal those of XᵀX/m (d × d), so it costs O(m d²)
  instead of O(m³). It reads as an effective number of distinct examples (1 = all identical, m = orthogonal).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from posttrain.select.features import FeatureSets
from posttrain.select.greedy import coverage


def length_stats(lengths: np.ndarray) -> dict[str, float]:
    x = np.asarray(lengths, dtype=np.float64)
    if x.size == 0:
        return {}
    return {
        "min": float(x.min()), "p10": float(np.percentile(x, 10)), "median": float(np.median(x)),
        "mean": round(float(x.mean()), 1), "p90": float(np.percentile(x, 90)), "max": float(x.max()),
    }  # fmt: skip


def mean_pairwise_cosine_distance(emb: np.ndarray, max_rows: int = 2000, seed: int = 0) -> float:
    emb = np.asarray(emb, dtype=np.float64)
    if len(emb) > max_rows:
        emb = emb[np.random.default_rng(seed).choice(len(emb), max_rows, replace=False)]
    m = len(emb)
    if m < 2:
        return 0.0
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    s = emb.sum(0)
    # Sum over all ordered pairs of cosines = ||Σx||² - Σ||x||²; no m × m matrix needed.
    mean_cos = (float(s @ s) - m) / (m * (m - 1))
    return 1.0 - mean_cos


def vendi_score(emb: np.ndarray) -> float:
    emb = np.asarray(emb, dtype=np.float64)
    m = len(emb)
    if m == 0:
        return 0.0
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    eig = np.linalg.eigvalsh(emb.T @ emb / m)
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))


def subset_report(
    picks: list[int],
    lengths: np.ndarray,
    features: FeatureSets | None = None,
    embeddings: np.ndarray | None = None,
    pool_coverage: int | None = None,
) -> dict[str, Any]:
    idx = np.asarray(picks, dtype=np.int64)
    out: dict[str, Any] = {"n": int(idx.size), "length": length_stats(np.asarray(lengths)[idx])}
    if features is not None:
        covered = coverage(features, idx)
        total = pool_coverage if pool_coverage is not None else coverage(features, np.arange(features.n))
        out["features"] = {
            "covered": covered,
            "pool": total,
            "fraction": round(covered / total, 4) if total else 0.0,
            "mean_per_example": round(float(features.sizes()[idx].mean()), 1) if idx.size else 0.0,
        }
    if embeddings is not None:
        sub = np.asarray(embeddings)[idx]
        out["diversity"] = {
            "mean_pairwise_cosine_distance": round(mean_pairwise_cosine_distance(sub), 4),
            "vendi": round(vendi_score(sub), 2),
        }
    return out


def print_reports(reports: dict[str, dict[str, Any]], console: Console | None = None) -> None:
    table = Table(title="selection report")
    for column in ("method", "n", "features covered", "coverage", "len median", "len mean", "len p90",
                   "cos dist", "vendi"):  # fmt: skip
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, r in reports.items():
        f, d, ln = r.get("features", {}), r.get("diversity", {}), r.get("length", {})
        table.add_row(
            method, str(r["n"]), str(f.get("covered", "-")),
            f"{f['fraction']:.1%}" if "fraction" in f else "-",
            f"{ln.get('median', 0):.0f}", f"{ln.get('mean', 0):.0f}", f"{ln.get('p90', 0):.0f}",
            f"{d['mean_pairwise_cosine_distance']:.3f}" if d else "-", f"{d['vendi']:.1f}" if d else "-",
        )  # fmt: skip
    (console or Console()).print(table)
