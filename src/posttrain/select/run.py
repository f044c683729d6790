"""From a pool file to a subset: activations -> SAE -> feature sets -> selector -> subset + report.

Every expensive intermediate is cached under `<cache>/select/<pool hash>/` and reused by a rerun: activation shards
(resumable mid-way), the SAE (`sae-<key>/sae.pt`, resumable from `checkpoint.pt`), the feature sets
(`features-<key>.npz`) and the MiniLM embeddings (`minilm.npy`). Precomputed feature sets or embeddings can be
passed in instead (`features_path`, `embeddings_path`).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from posttrain.errors import InputError
from posttrain.records import content_id
from posttrain.select.data import Pool
from posttrain.select.features import (
    ActivationStore,
    FeatureConfig,
    FeatureSets,
    embed_minilm,
    extract,
    store_key,
)
from posttrain.select.features import feature_sets as compute_feature_sets
from posttrain.select.sae import SAEConfig, SAEReport, TopKSAE, load_sae, train_sae
from posttrain.select.selectors import (
    NEEDS_EMBEDDINGS,
    NEEDS_FEATURES,
    Inputs,
    Selection,
    SelectorConfig,
    select,
)

REPORT_MODES = ("auto", "all")


@dataclass
class SelectConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    sae: SAEConfig = field(default_factory=SAEConfig)
    selector: SelectorConfig = field(default_factory=SelectorConfig)
    # for kcenter / semdedup / diversity: minilm sentence embeddings, or lm mean states
    embeddings: Literal["minilm", "lm"] = "minilm"
    cache_dir: str | None = None  # default: the posttrain cache dir (POSTTRAIN_CACHE) + /select
    sae_path: str | None = None  # a trained SAE checkpoint to use instead of training one
    features_path: str | None = None  # precomputed feature sets (.npz: indptr, indices, n_latents)
    embeddings_path: str | None = None  # precomputed embeddings (.npy, n × d)
    progress: bool = True

    def check(self) -> None:
        self.features.check()
        self.sae.check()


class Workspace:
    """The cached intermediates of one pool under one config; each is computed on first use."""

    def __init__(self, pool: Pool, cfg: SelectConfig):
        from posttrain.models.embedded import cache_dir

        cfg.check()
        self.pool, self.cfg = pool, cfg
        self.root = Path(cfg.cache_dir) if cfg.cache_dir else cache_dir() / "select"
        self.root = self.root / pool.key
        self._store: ActivationStore | None = None
        self._sae: TopKSAE | None = None
        self.sae_report: SAEReport | None = None
        self._features: FeatureSets | None = None
        self._embeddings: np.ndarray | None = None
        self.timings: dict[str, float] = {}

    def store(self) -> ActivationStore:
        if self._store is None:
            started = time.perf_counter()
            key = store_key(self.cfg.features, self.pool.key)
            self._store = extract(
                self.pool.texts(), self.cfg.features, self.root / f"acts-{key}", self.cfg.progress
            )
            self.timings["activations_s"] = round(time.perf_counter() - started, 2)
        return self._store

    def sae(self) -> TopKSAE:
        if self._sae is None:
            if self.cfg.sae_path:
                self._sae = load_sae(self.cfg.sae_path)
                return self._sae
            store = self.store()
            started = time.perf_counter()
            data_key = store_key(self.cfg.features, self.pool.key)
            out = self.root / f"sae-{content_id(asdict(self.cfg.sae) | {'threads': None}, data_key)}"
            batch = self.cfg.sae.batch_size
            self._sae, self.sae_report = train_sae(
                self.cfg.sae,
                lambda seed: store.batches(batch, seed),
                store.d,
                out,
                data_key,
                self.cfg.progress,
            )
            self.timings["sae_s"] = round(time.perf_counter() - started, 2)
        return self._sae

    def features(self) -> FeatureSets:
        if self._features is None:
            if self.cfg.features_path:
                self._features = FeatureSets.load(self.cfg.features_path)
                if self._features.n != len(self.pool):
                    raise InputError(
                        f"feature sets hold {self._features.n} examples but the pool has {len(self.pool)}",
                        self.cfg.features_path,
                    )
                return self._features
            sae = self.sae()
            started = time.perf_counter()
            fingerprint = (self.cfg.sae_path and os.path.getmtime(self.cfg.sae_path), asdict(self.cfg.sae),
                           store_key(self.cfg.features, self.pool.key), self.cfg.features.threshold)  # fmt: skip
            path = self.root / f"features-{content_id(fingerprint)}.npz"
            if path.exists():
                self._features = FeatureSets.load(path)
            else:
                self._features = compute_feature_sets(
                    sae, self.store(), self.cfg.features.threshold, self.cfg.progress
                )
                self._features.save(path)
            self.timings["features_s"] = round(time.perf_counter() - started, 2)
        return self._features

    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            if self.cfg.embeddings_path:
                try:
                    emb = np.load(self.cfg.embeddings_path)
                except (OSError, ValueError) as err:
                    raise InputError(f"not a .npy embeddings file: {err}", self.cfg.embeddings_path) from None
                if emb.ndim != 2 or len(emb) != len(self.pool):
                    raise InputError(f"embeddings must be ({len(self.pool)}, d), got {emb.shape}",
                                     self.cfg.embeddings_path)  # fmt: skip
                norms = np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
                self._embeddings = (emb / norms).astype(np.float32)
                return self._embeddings
            started = time.perf_counter()
            if self.cfg.embeddings == "lm":
                self._embeddings = self.store().example_means()
            else:
                path = self.root / "minilm.npy"
                if path.exists():
                    self._embeddings = np.load(path)
                else:
                    self._embeddings = embed_minilm(self.pool.texts())
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f".minilm.{os.getpid()}.tmp.npy")
                    np.save(tmp, self._embeddings)
                    os.replace(tmp, path)
            self.timings["embeddings_s"] = round(time.perf_counter() - started, 2)
        return self._embeddings

    def inputs(self, methods: list[str], report: str = "auto") -> Inputs:
        need_f = report == "all" or any(m in NEEDS_FEATURES for m in methods)
        need_e = report == "all" or any(m in NEEDS_EMBEDDINGS for m in methods)
        return Inputs(
            n=len(self.pool),
            features=self.features() if need_f else None,
            embeddings=self.embeddings() if need_e else None,
            lengths=self.pool.lengths,
            quality=self.pool.quality,
            difficulty=self.pool.difficulty,
        )


def run_selection(
    pool: Pool, methods: list[str], budget: int, cfg: SelectConfig, report: str = "auto"
) -> tuple[dict[str, Selection], dict[str, dict[str, Any]], Workspace]:
    """Each method's selection and report. Everything is computed (and validated) before anything is written."""
    from posttrain.select.report import subset_report
    from posttrain.select.selectors import check_method

    if report not in REPORT_MODES:
        raise InputError(f"unknown report mode '{report}'; choose one of {', '.join(REPORT_MODES)}")
    for method in methods:
        check_method(method)
    from posttrain.select.data import check_budget

    check_budget(pool, budget)
    ws = Workspace(pool, cfg)
    inputs = ws.inputs(methods, report)
    selections, reports = {}, {}
    pool_cov = None
    if inputs.features is not None:
        pool_cov = int(np.unique(inputs.features.indices).size)
    for method in methods:
        started = time.perf_counter()
        selection = select(method, budget, inputs, cfg.selector)
        seconds = time.perf_counter() - started
        selections[method] = selection
        reports[method] = subset_report(
            selection.picks, pool.lengths, inputs.features, inputs.embeddings, pool_cov
        )
        reports[method]["seconds"] = round(seconds, 3)
        reports[method]["info"] = selection.info
    if ws.sae_report is not None:
        for r in reports.values():
            r["sae"] = {"nmse": round(ws.sae_report.nmse, 4), "dead_fraction": round(ws.sae_report.dead_fraction, 4),
                        "steps": ws.sae_report.steps}  # fmt: skip
    return selections, reports, ws
