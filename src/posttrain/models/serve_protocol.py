"""OpenAI's chat API as `posttrain serve` speaks it: requests checked into plain values, and the JSON (or the
server-sent events, for `stream: true`) that OpenAI clients expect back. No I/O here: `serve.py` does that."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from posttrain.models.backend import Completion, SamplingParams

MAX_N = 128


class RequestError(Exception):
    """A request the server refuses, sent to the client as OpenAI's error JSON."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    n: int
    params: SamplingParams
    stream: bool = False
    include_usage: bool = False  # stream_options.include_usage: a last chunk with the token counts


def parse_chat_request(body: Any, model_id: str) -> ChatRequest:
    """A chat completion request, checked; `RequestError` when it is malformed."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    check_model(body, model_id)
    if body.get("logprobs"):
        raise RequestError(
            400, "logprobs are not supported on chat completions; use /v1/completions with echo"
        )
    messages = _messages(body.get("messages"))
    n = number(body, "n", 1, int, low=1, high=MAX_N)
    max_tokens = number(body, "max_completion_tokens", None, int, low=1)
    if max_tokens is None:
        max_tokens = number(body, "max_tokens", 256, int, low=1)
    top_k = number(body, "top_k", 0, int, low=-1)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) and s for s in stop)):
        raise RequestError(400, "'stop' must be a non-empty string or a list of them")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, "'seed' must be an integer")
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=number(body, "temperature", 1.0, float, low=0.0, high=2.0),
        top_p=number(body, "top_p", 1.0, float, low=0.0, high=1.0),
        top_k=max(0, top_k),  # vLLM spells "no top-k" as -1
        stop=tuple(stop or ()),
        seed=seed,  # no seed: fresh randomness per request, as OpenAI
    )
    if params.top_p == 0:
        raise RequestError(400, "'top_p' must be greater than 0")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, f"'stream' must be true or false, got {stream!r}")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "'stream_options' must be an object")
    return ChatRequest(messages, n, params, stream, bool(options.get("include_usage")))


def check_model(body: dict[str, Any], model_id: str) -> None:
    model = body.get("model")
    if model is not None and model != model_id:
        raise RequestError(
            404, f"The model `{model}` does not exist; this server serves `{model_id}`", "model_not_found"
        )


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise RequestError(400, "'messages' must be a non-empty list of {role, content} objects")
    messages = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError(400, f"messages[{i}] must be an object with a 'role' string")
        content = m.get("content")
        if isinstance(content, list):  # OpenAI's content parts: only text parts mean anything here
            if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
                raise RequestError(400, f"messages[{i}].content: only text parts are supported")
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string")
        messages.append({"role": m["role"], "content": content})
    return messages


def number(
    body: dict[str, Any],
    key: str,
    default: Any,
    kind: type,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (kind is int and not isinstance(value, int))
    ):
        raise RequestError(
            400, f"'{key}' must be {'an integer' if kind is int else 'a number'}, got {value!r}"
        )
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise RequestError(400, f"'{key}' must be {bounds}, got {value!r}")
    return kind(value)


# ---------------------------------------------------------------------------------------------- responses


def error_body(message: str, status: int, code: str | None = None) -> dict[str, Any]:
    kind = {429: "requests", 503: "server_error"}.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def usage(completions: list[Completion]) -> dict[str, int]:
    generated = sum(c.completion_tokens for c in completions)
    prompt = completions[0].prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def chat_response(model_id: str, completions: list[Completion]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": j,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
            for j, c in enumerate(completions)
        ],
        "usage": usage(completions),
    }


class ChatStream:
    """The chunks of one streamed chat completion (`chat.completion.chunk` objects, one id for all)."""

    def __init__(self, model_id: str, n: int) -> None:
        self.model_id, self.n = model_id, n
        self.id, self.created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def opening(self) -> Iterator[str]:
        """Sent at once: each choice's role, so a client sees the response start before any text exists."""
        for j in range(self.n):
            yield self._event([{"index": j, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])

    def closing(self, completions: list[Completion], include_usage: bool) -> Iterator[str]:
        for j, c in enumerate(completions):
            yield self._event([{"index": j, "delta": {"content": c.text}, "finish_reason": None}])
            yield self._event([{"index": j, "delta": {}, "finish_reason": c.finish_reason}])
        if include_usage:  # as OpenAI: a last chunk with no choices and the request's usage
            yield self._event([], usage=usage(completions))
        yield "data: [DONE]\n\n"

    def failure(self, status: int, message: str) -> Iterator[str]:
        """An error after the stream started (its status line is already sent): OpenAI's error object as an event."""
        yield f"data: {json.dumps(error_body(message, status), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model_id, "choices": choices, **extra}  # fmt: skip
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
