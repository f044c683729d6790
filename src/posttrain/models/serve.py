"""A small OpenAI-compatible HTTP server over any posttrain backend (standard library only).

    GET  /v1/models             the one model served
    POST /v1/chat/completions   n, max_tokens, temperature, top_p, top_k, stop, seed; usage and finish_reason
    POST /v1/completions        scoring only: echo=true with logprobs and max_tokens 0 or 1 (models with a local
                                tokenizer, e.g. the transformers backend); this is what `OpenAIBackend.logprobs` calls

It makes a local model reachable by anything that speaks OpenAI's API, and it is the real server the OpenAI
client is tested against. Backends are not thread-safe, so requests are served one at a time behind a lock; a
final assistant message is always continued (vLLM's `continue_final_message`), as posttrain backends do.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from posttrain.errors import InputError
from posttrain.models.backend import Backend, SamplingParams

log = logging.getLogger("posttrain.serve")

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_N = 128


class RequestError(Exception):
    """A request the server refuses, sent to the client as OpenAI's error JSON."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class BackendServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, backend: Backend, host: str, port: int, api_key: str | None = None, model_id: str | None = None
    ):
        self.backend = backend
        self.model_id = model_id or str(getattr(backend, "name", "model"))
        self.api_key = api_key
        self.lock = threading.Lock()
        self.created = int(time.time())
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_id: str | None = None,
) -> BackendServer:
    """A bound server (port 0: any free port, see `.url`); run it with `serve_forever()`."""
    return BackendServer(backend, host, port, api_key=api_key, model_id=model_id)


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    """Serve `backend` until interrupted."""
    server = make_server(backend, host, port, api_key)
    log.info("serving %s at %s/v1", server.model_id, server.url)
    run_until_interrupted(server)


def run_until_interrupted(server: Any) -> None:
    """Serve until Ctrl-C, then release the port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ----------------------------------------------------------------------------------------------- requests


def parse_chat_request(body: Any, model_id: str) -> tuple[list[dict[str, str]], int, SamplingParams]:
    """Messages, n and sampling parameters of a chat completion request; `RequestError` when it is malformed."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    _check_model(body, model_id)
    if body.get("stream"):
        raise RequestError(400, "stream=true is not supported by this server")
    if body.get("logprobs"):
        raise RequestError(
            400, "logprobs are not supported on chat completions; use /v1/completions with echo"
        )
    messages = _messages(body.get("messages"))
    n = _number(body, "n", 1, int, low=1, high=MAX_N)
    max_tokens = _number(body, "max_completion_tokens", None, int, low=1)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 256, int, low=1)
    top_k = _number(body, "top_k", 0, int, low=-1)
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
        temperature=_number(body, "temperature", 1.0, float, low=0.0, high=2.0),
        top_p=_number(body, "top_p", 1.0, float, low=0.0, high=1.0),
        top_k=max(0, top_k),  # vLLM spells "no top-k" as -1
        stop=tuple(stop or ()),
        seed=seed,  # no seed: fresh randomness per request, as OpenAI
    )
    if params.top_p == 0:
        raise RequestError(400, "'top_p' must be greater than 0")
    return messages, n, params


def _check_model(body: dict[str, Any], model_id: str) -> None:
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


def _number(
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


# ----------------------------------------------------------------------------------------------- handlers


def chat_completion(server: BackendServer, body: Any) -> dict[str, Any]:
    messages, n, params = parse_chat_request(body, server.model_id)
    with server.lock:
        (completions,) = server.backend.generate([messages], n, params)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": server.model_id,
        "choices": [
            {
                "index": j,
                "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason,
                "logprobs": None,
            }
            for j, c in enumerate(completions)
        ],
        "usage": {
            "prompt_tokens": completions[0].prompt_tokens,
            "completion_tokens": sum(c.completion_tokens for c in completions),
            "total_tokens": completions[0].prompt_tokens + sum(c.completion_tokens for c in completions),
        },
    }


def text_completion(server: BackendServer, body: Any) -> dict[str, Any]:
    """Prompt scoring (echo=true, logprobs, max_tokens <= 1): the subset lm-eval and `OpenAIBackend` use."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    _check_model(body, server.model_id)
    prompt = body.get("prompt")
    max_tokens = _number(body, "max_tokens", 16, int, low=0)
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "'prompt' must be a non-empty string")
    if not body.get("echo") or body.get("logprobs") is None or max_tokens > 1:
        raise RequestError(
            400,
            "this server only scores prompts on /v1/completions: send echo=true, logprobs and max_tokens 0 or 1",
        )
    model, tokenizer = getattr(server.backend, "model", None), getattr(server.backend, "tokenizer", None)
    if model is None or tokenizer is None:
        raise RequestError(
            400, f"backend '{server.model_id}' cannot score prompts (no local model and tokenizer)"
        )
    add_special = body.get("add_special_tokens", True) is not False
    with server.lock:
        scored = score_text(model, tokenizer, prompt, add_special, generate_one=max_tokens == 1)
    tokens, offsets, logprobs, next_token = scored
    text = prompt + (next_token or "")
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": server.model_id,
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client's many small requests reuse their connections
    server: BackendServer

    def do_GET(self) -> None:
        self._respond(lambda: self._models() if self.path.rstrip("/") == "/v1/models" else self._not_found())

    def do_POST(self) -> None:
        routes = {"/v1/chat/completions": chat_completion, "/v1/completions": text_completion}
        route = routes.get(self.path.rstrip("/"))
        self._respond(lambda: route(self.server, self._body()) if route else self._not_found())

    def _respond(self, handle: Any) -> None:
        try:
            self._authorize()
            status, payload = 200, handle()
        except RequestError as err:
            status, payload = err.status, _error(err.message, err.status, err.code)
        except InputError as err:  # e.g. a prompt longer than the context: the client's request, not our bug
            status, payload = 400, _error(err.message, 400)
        except Exception as err:  # keep serving; the client sees a 500 and may retry
            log.error("error serving %s:\n%s", self.path, traceback.format_exc())
            status, payload = 500, _error(f"{type(err).__name__}: {err}", 500)
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorize(self) -> None:
        if self.server.api_key is None:
            return
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.api_key}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self._drain()
            raise RequestError(
                401, "Incorrect or missing API key (send Authorization: Bearer <key>)", "invalid_api_key"
            )

    def _drain(self) -> None:
        # Unread body bytes would be parsed as the next request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(400, f"the request body is not valid JSON: {err}") from None

    def _models(self) -> dict[str, Any]:
        model = {
            "id": self.server.model_id,
            "object": "model",
            "created": self.server.created,
            "owned_by": "posttrain",
        }
        return {"object": "list", "data": [model]}

    def _not_found(self) -> Any:
        self._drain()
        raise RequestError(
            404, f"no route {self.command} {self.path}; see GET /v1/models, POST /v1/chat/completions"
        )

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


def _error(message: str, status: int, code: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
