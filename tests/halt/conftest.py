"""A tiny random Llama with the embedded tokenizer: a real backend (and SFT model) that runs in a second."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir
    from tests.train.conftest import tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
