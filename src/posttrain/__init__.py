"""posttrain: verifiable preference data and constrained alignment for language models."""

import os

# oneDNN (bf16 matmuls on CPU) and PyTorch's ideep layer each cache up to 1024 compiled kernels, one per input
# shape, at ~1 MB each; training sees a new shape with every row length, so a bf16 run's memory grew by ~750 MB in
# 16 DPO steps. 128 entries kept the same speed with flat memory (docs/benchmarks.md). Both are read at the first
# bf16 matmul, so setting them here (a user's own values win) reaches every posttrain process.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "128")
os.environ.setdefault("LRU_CACHE_CAPACITY", "128")

__version__ = "0.1.0"
