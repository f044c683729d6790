"""Model backends: local transformers, OpenAI-compatible servers, in-process vLLM; and the embedded default model."""

from posttrain.models.backend import Backend, Completion, SamplingParams, load_backend

__all__ = ["Backend", "Completion", "SamplingParams", "load_backend"]
