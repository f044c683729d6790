"""The backend contract: every model posttrain samples from or scores with looks like this.

A prompt is plain text (sent as one user turn) or a list of chat messages. When the last message is the
assistant's, the backend continues that message instead of starting a new turn: MCTS grows responses this way.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from posttrain.errors import InputError

ChatPrompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 is greedy. `seed` makes every (prompt, sample index) reproducible on its own,
    whatever else shares its batch."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filter
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop": EOS or a stop string; "length": max_new_tokens reached


@runtime_checkable
class Backend(Protocol):
    name: str

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        """n completions for each prompt, in prompt order."""
        ...

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        """Log-probability of each completion token given the prompt (teacher forcing)."""
        ...


def as_messages(prompt: Any) -> list[dict[str, str]]:
    """Plain text -> one user turn; pydantic messages or dicts -> plain role/content dicts."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = []
    for m in prompt:
        m = m.model_dump() if hasattr(m, "model_dump") else dict(m)
        messages.append({"role": str(m["role"]), "content": str(m["content"])})
    if not messages:
        raise InputError("a prompt has no messages")
    return messages


def sample_seed(seed: int | None, prompt: Any, index: int) -> int | None:
    """The seed of one (prompt, sample index): independent of batch composition and order."""
    if seed is None:
        return None
    blob = json.dumps([seed, as_messages(prompt), index], sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "little") & ((1 << 63) - 1)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def torch_threads() -> int:
    """Threads for torch: OMP_NUM_THREADS when set (e.g. one per process when several share the cores, since
    oversubscribed OpenMP threads spin and run several times slower), else every core this process may use."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else available_cores()


def load_backend(
    spec: str = "embedded", threads: int | None = None, dtype: Any = None, rows: int | None = None, **options: Any
) -> Backend:
    """A backend from a spec string:

    - `embedded`, a local HF directory, or `hf:<dir>`: transformers in this process;
    - `openai:<base_url>` or `openai:<base_url>#<model>`: any OpenAI-compatible server (vLLM, llama.cpp, Ollama);
    - `vllm:<model>`: in-process vLLM (optional extra, GPU).

    `threads`, `dtype` ("auto", "float32", "bfloat16") and `rows` (sequences decoded together; callers that hand
    it batches of prompts × n samples pass that product, so a call decodes as one batch) apply to the in-process
    transformers backend; a server chooses its own.
    """
    kind, _, rest = spec.partition(":")
    if kind == "openai" and rest:
        from posttrain.models.openai import OpenAIBackend

        base_url, _, model = rest.partition("#")
        return OpenAIBackend(base_url, model=model or None, **options)
    if kind == "vllm" and rest:
        from posttrain.models.vllm import VLLMBackend

        return VLLMBackend(rest, **options)
    from posttrain.models.hf import HFBackend

    if rows is not None:
        options["batch_size"] = rows
    return HFBackend(rest if kind == "hf" and rest else spec, threads=threads, dtype=dtype, **options)
