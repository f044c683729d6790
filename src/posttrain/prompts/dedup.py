"""Exact and near-duplicate removal for prompt texts, incremental (one text at a time, as they are generated).

Exact: a hash of the normalised text (Unicode NFKC, lower case, punctuation and runs of whitespace collapsed), so
"Write a poem." and "write a  poem" are the same prompt.

Near: MinHash over word 3-gram shingles with banded LSH (Broder 1997; Leskovec et al., Mining of Massive Datasets
ch. 3). `num_perm = bands * rows` hash functions of the multiply-shift family on stable 32-bit shingle hashes
(zlib.crc32, so results do not depend on PYTHONHASHSEED). Texts sharing a band are candidates; a candidate is a
duplicate when the signatures agree on >= `threshold` of the positions (the Jaccard estimate). With 16 bands of 8
rows (128 hashes), pairs above ~0.7 Jaccard become candidates with high probability, and the estimate has a
standard error of about 0.03 near 0.85: this suits thresholds 0.75-0.95.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalize(text: str) -> str:
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def text_hash(text: str) -> str:
    return _hash_normalized(normalize(text))


def _hash_normalized(normalized: str) -> str:
    return hashlib.blake2b(normalized.encode("utf-8"), digest_size=12).hexdigest()


def shingles(text: str, size: int = 3, normalized: bool = False) -> list[str]:
    words = (text if normalized else normalize(text)).split()
    if len(words) <= size:
        return [" ".join(words)]
    return [" ".join(words[i : i + size]) for i in range(len(words) - size + 1)]


class MinHashIndex:
    """Near-duplicate detector: `add(text)` returns False (and does not add) when a near duplicate is indexed."""

    def __init__(self, threshold: float = 0.9, bands: int = 16, rows: int = 8, seed: int = 0):
        self.threshold = threshold
        self.bands, self.rows = bands, rows
        generator = np.random.default_rng(seed)
        perms = bands * rows
        self._a = generator.integers(1, 2**63, size=perms, dtype=np.uint64) | np.uint64(1)  # odd multipliers
        self._b = generator.integers(0, 2**63, size=perms, dtype=np.uint64)
        self._buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self._signatures: list[np.ndarray] = []

    def signature(self, text: str, normalized: bool = False) -> np.ndarray:
        grams = shingles(text, normalized=normalized)
        values = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in grams), dtype=np.uint64, count=len(grams))
        with np.errstate(over="ignore"):  # multiply-shift hashing wraps around 2**64 on purpose
            hashed = (values[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        return hashed.min(axis=0)

    def similar(self, signature: np.ndarray) -> int | None:
        """Index of an indexed text whose estimated Jaccard similarity is >= threshold, if any."""
        seen: set[int] = set()
        for band, key in enumerate(self._band_keys(signature)):
            for other in self._buckets[band].get(key, ()):
                if other in seen:
                    continue
                seen.add(other)
                if float(np.mean(self._signatures[other] == signature)) >= self.threshold:
                    return other
        return None

    def add(self, text: str, normalized: bool = False) -> bool:
        signature = self.signature(text, normalized)
        if self.similar(signature) is not None:
            return False
        index = len(self._signatures)
        self._signatures.append(signature)
        for band, key in enumerate(self._band_keys(signature)):
            self._buckets[band].setdefault(key, []).append(index)
        return True

    def _band_keys(self, signature: np.ndarray) -> list[bytes]:
        return [signature[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]


class Deduplicator:
    """Exact (normalised hash) always; near (MinHash) when `near_threshold` is set. Counts what it rejected."""

    def __init__(self, near_threshold: float | None = 0.9, seed: int = 0):
        self._hashes: set[str] = set()
        self._near = MinHashIndex(near_threshold, seed=seed) if near_threshold else None
        self.exact_rejected = 0
        self.near_rejected = 0

    def add(self, text: str) -> bool:
        normalized = normalize(text)
        key = _hash_normalized(normalized)
        if key in self._hashes:
            self.exact_rejected += 1
            return False
        if self._near is not None and not self._near.add(normalized, normalized=True):
            self.near_rejected += 1
            return False
        self._hashes.add(key)
        return True
