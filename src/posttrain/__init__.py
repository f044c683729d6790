"""posttrain: verifiable preference data and constrained alignment for language models."""

import os

# oneDNN (bf16 matmuls on CPU) and PyTorch's ideep layer each cache up to 1024 compiled kernels, one per input
# shape, at ~1 MB each; training sees a new shape with every row length, so a bf16 run's memory grew by ~750 MB in
# 16 DPO steps. 128 entries kept the same speed with flat memory; 64 the same speed again (DPO, sampling) ~40 MB
# lower, and 16 was 25% slower on DPO (one pass needs ~20 kernels; docs/benchmarks.md). Both are read at the first
# bf16 matmul, so setting them here (a user's own values win) reaches every posttrain process.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
os.environ.setdefault("LRU_CACHE_CAPACITY", "64")

__version__ = "0.1.0"
