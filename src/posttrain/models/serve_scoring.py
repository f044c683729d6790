"""Prompt scoring on `/v1/completions` (echo=true with logprobs, max_tokens 0 or 1): the subset lm-eval and
`OpenAIBackend.logprobs` use. Models with a local tokenizer only (the transformers backend)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from posttrain.models.serve_protocol import RequestError, check_model, number


@dataclass(frozen=True)
class ScoringRequest:
    prompt: str
    add_special_tokens: bool
    generate_one: bool  # max_tokens 1: the greedy next token and its logprob too


def parse_scoring_request(body: Any, model_id: str, backend: Any) -> ScoringRequest:
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    check_model(body, model_id)
    prompt = body.get("prompt")
    max_tokens = number(body, "max_tokens", 16, int, low=0)
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "'prompt' must be a non-empty string")
    if not body.get("echo") or body.get("logprobs") is None or max_tokens > 1:
        raise RequestError(
            400,
            "this server only scores prompts on /v1/completions: send echo=true, logprobs and max_tokens 0 or 1",
        )
    if getattr(backend, "model", None) is None or getattr(backend, "tokenizer", None) is None:
        raise RequestError(400, f"backend '{model_id}' cannot score prompts (no local model and tokenizer)")
    return ScoringRequest(prompt, body.get("add_special_tokens", True) is not False, max_tokens == 1)


def score(backend: Any, request: ScoringRequest) -> tuple[list[str], list[int], list[float | None], str | None]:
    """Runs on the backend's thread (see `Batcher.run`)."""
    return score_text(backend.model, backend.tokenizer, request.prompt, request.add_special_tokens, request.generate_one)


def scoring_response(model_id: str, prompt: str, scored: tuple[Any, ...]) -> dict[str, Any]:
    tokens, offsets, logprobs, next_token = scored
    text = prompt + (next_token or "")
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "text": text,
                "logprobs": {
                    "tokens": tokens,
                    "token_logprobs": logprobs,
                    "text_offset": offsets,
                    "top_logprobs": None,
                },
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": len(tokens) - (1 if next_token is not None else 0),
            "completion_tokens": 1 if next_token is not None else 0,
            "total_tokens": len(tokens),
        },
    }


def score_text(
    model: Any, tokenizer: Any, text: str, add_special_tokens: bool, generate_one: bool
) -> tuple[list[str], list[int], list[float | None], str | None]:
    """Tokens, character offsets and logprobs of `text` (the first token has none), plus the greedy next token."""
    import torch

    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids = list(enc.input_ids)
    offsets = [int(a) for a, _ in enc.offset_mapping]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    values: list[float | None] = [None] + [float(logp[k - 1, ids[k]]) for k in range(1, len(ids))]
    tokens = [text[a:b] for a, b in enc.offset_mapping]
    next_token = None
    if generate_one:
        best = int(logp[-1].argmax())
        next_token = str(tokenizer.decode([best]))
        tokens.append(next_token)
        offsets.append(len(text))
        values.append(float(logp[-1, best]))
    return tokens, offsets, values, next_token
