"""Fixtures for the judge tests: the embedded tokenizer and tiny random Llama models built from a config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tokenizer():
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


def tiny_config(vocab_size: int, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, **extra,
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_causal_lm(tokenizer):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(tiny_config(len(tokenizer), tie_word_embeddings=True)).eval()


@pytest.fixture(scope="session")
def tiny_backend(tiny_causal_lm, tokenizer):
    from posttrain.models.hf import HFBackend

    # one thread: these forwards are tiny, and two OpenMP threads on a shared 2-core machine can stall each other
    return HFBackend("tiny", threads=1, model_and_tokenizer=(tiny_causal_lm, tokenizer))


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny random LlamaForSequenceClassification (num_labels=1) saved with the embedded tokenizer."""
    from transformers import LlamaForSequenceClassification

    torch.manual_seed(1)
    config = tiny_config(len(tokenizer), num_labels=1, pad_token_id=tokenizer.pad_token_id or 0)
    path = tmp_path_factory.mktemp("tiny-rm")
    LlamaForSequenceClassification(config).eval().save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
