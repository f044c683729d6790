"""An OpenAI-compatible HTTP server over any posttrain backend, on Starlette and uvicorn.

    GET  /v1/models             the one model served
    POST /v1/chat/completions   n, max_tokens, temperature, top_p, top_k, stop, seed, stream (server-sent events,
                                stream_options.include_usage); usage and finish_reason
    POST /v1/completions        scoring only: echo=true with logprobs and max_tokens 0 or 1 (models with a local
                                tokenizer, e.g. the transformers backend); this is what `OpenAIBackend.logprobs` calls
    GET  /health                liveness and queue depth, without the API key (for load balancers)

Concurrent requests are batched into one backend call (`batcher.py`), and at most `max_queue` wait: beyond that
a request is answered 429 with OpenAI's error JSON and a Retry-After, which OpenAI clients (and posttrain's own)
retry, rather than held until its connection times out. Ctrl-C finishes the requests in flight, then stops (a
second Ctrl-C stops at once). A final assistant message is always continued (vLLM's `continue_final_message`),
as posttrain backends do.

A streamed response sends each choice's role at once, keep-alive comments while the request waits, then each
choice's text when its batch is done: the backends produce whole completions, so the text arrives in one delta
per choice, not token by token.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from posttrain.errors import InputError
from posttrain.models.backend import Backend
from posttrain.models.batcher import Batcher, QueueFull, ShuttingDown
from posttrain.models.serve_protocol import (
    ChatRequest,
    ChatStream,
    RequestError,
    chat_response,
    error_body,
    parse_chat_request,
)
from posttrain.models.serve_scoring import parse_scoring_request, score, scoring_response

log = logging.getLogger("posttrain.serve")

MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_QUEUE = 512
KEEPALIVE_SECONDS = 10.0  # an SSE comment this often while a streamed request waits: proxies keep the connection
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class BackendServer:
    """A bound server (port 0: any free port, see `.url`): `serve_forever()` runs it in the calling thread,
    `shutdown()` (from another thread) drains it, `server_close()` releases the port."""

    def __init__(
        self,
        backend: Backend,
        host: str,
        port: int,
        api_key: str | None = None,
        model_id: str | None = None,
        max_batch: int | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ):
        import uvicorn

        self.backend = backend
        self.model_id = model_id or str(getattr(backend, "name", "model"))
        self.api_key = api_key
        self.created = int(time.time())
        self.batcher = Batcher(backend, max_batch or default_max_batch(backend), max_queue)
        self.socket = _bind(host, port)
        self.server_address = self.socket.getsockname()[:2]
        config = uvicorn.Config(
            build_app(self), log_config=None, log_level="warning", access_log=False, lifespan="on",
            timeout_keep_alive=30, timeout_graceful_shutdown=None,  # finish every request in flight
        )  # fmt: skip
        self._uvicorn = uvicorn.Server(config)
        self._serving = threading.Event()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._uvicorn.run(sockets=[self.socket])  # in the main thread it handles Ctrl-C itself, gracefully
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop taking connections, finish the requests in flight, return when the server has stopped."""
        self._uvicorn.should_exit = True
        if self._serving.is_set():
            self._stopped.wait()

    def server_close(self) -> None:
        self.socket.close()


def default_max_batch(backend: Backend) -> int:
    """As many requests per call as the backend decodes at once; 1 for a backend that does not batch."""
    return max(1, int(getattr(backend, "batch_size", 1)))


def make_server(
    backend: Backend,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_id: str | None = None,
    max_batch: int | None = None,
    max_queue: int = DEFAULT_MAX_QUEUE,
) -> BackendServer:
    return BackendServer(backend, host, port, api_key, model_id, max_batch, max_queue)


def serve(backend: Backend, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None) -> None:
    """Serve `backend` until interrupted."""
    server = make_server(backend, host, port, api_key)
    log.info("serving %s at %s/v1", server.model_id, server.url)
    run_until_interrupted(server)


def run_until_interrupted(server: BackendServer) -> None:
    """Serve until Ctrl-C (uvicorn drains the requests in flight first), then release the port."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled once it has shut down
        pass
    finally:
        server.server_close()


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


# -------------------------------------------------------------------------------------------------- the app


def build_app(server: BackendServer) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        server.batcher.start()
        yield
        await server.batcher.stop()  # uvicorn has drained the requests by now

    async def endpoint(request: Request) -> Response:
        try:
            return await route(server, request)
        except RequestError as err:
            return _error(err.status, err.message, err.code)
        except QueueFull:
            message = f"the server is at capacity ({server.batcher.max_queue} requests waiting); retry shortly"
            return _error(429, message, "rate_limit_exceeded", {"Retry-After": "1"})
        except ShuttingDown:
            return _error(503, "the server is shutting down", "server_shutting_down")
        except InputError as err:  # e.g. a prompt longer than the context: the client's request, not our bug
            return _error(400, err.message)
        except Exception as err:  # keep serving; the client sees a 500 and may retry
            log.error("error serving %s:\n%s", request.url.path, traceback.format_exc())
            return _error(500, f"{type(err).__name__}: {err}")

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)], lifespan=lifespan)


async def route(server: BackendServer, request: Request) -> Response:
    path = request.url.path.rstrip("/")
    if (request.method, path) == ("GET", "/health"):
        batcher = server.batcher
        return _json({"status": "ok", "waiting": batcher.waiting_requests, "running": batcher.running})
    body = await _read_body(request)
    _authorize(server, request)
    if (request.method, path) == ("GET", "/v1/models"):
        model = {"id": server.model_id, "object": "model", "created": server.created, "owned_by": "posttrain"}
        return _json({"object": "list", "data": [model]})
    if (request.method, path) == ("POST", "/v1/chat/completions"):
        return await chat(server, parse_chat_request(_parse_json(body), server.model_id))
    if (request.method, path) == ("POST", "/v1/completions"):
        scoring = parse_scoring_request(_parse_json(body), server.model_id, server.backend)
        scored = await server.batcher.submit_call(lambda backend: score(backend, scoring))
        return _json(scoring_response(server.model_id, scoring.prompt, scored))
    raise RequestError(404, f"no route {request.method} {request.url.path}; see GET /v1/models, POST /v1/chat/completions")


async def chat(server: BackendServer, chat_request: ChatRequest) -> Response:
    future = server.batcher.submit(chat_request.messages, chat_request.n, chat_request.params)
    if not chat_request.stream:
        return _json(chat_response(server.model_id, await future))
    stream = ChatStream(server.model_id, chat_request.n)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(stream, future, chat_request.include_usage), media_type="text/event-stream",
                             headers=headers)  # fmt: skip


async def _events(stream: ChatStream, future: asyncio.Future[Any], include_usage: bool) -> AsyncIterator[str]:
    try:
        for event in stream.opening():
            yield event
        while True:
            try:
                completions = await asyncio.wait_for(asyncio.shield(future), KEEPALIVE_SECONDS)
                break
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
        for event in stream.closing(completions, include_usage):
            yield event
    except InputError as err:
        for event in stream.failure(400, err.message):
            yield event
    except Exception as err:  # the status line is sent: the error goes in the stream, as OpenAI's does
        log.error("error in a streamed completion:\n%s", traceback.format_exc())
        for event in stream.failure(500, f"{type(err).__name__}: {err}"):
            yield event
    finally:
        future.cancel()  # the client went away before its turn: the batcher skips it (no-op once done)


async def _read_body(request: Request) -> bytes:
    try:
        length = int(request.headers.get("content-length") or 0)
    except ValueError:
        raise RequestError(400, "bad Content-Length") from None
    if length > MAX_BODY_BYTES:
        raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies carry no length: count as they come
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _authorize(server: BackendServer, request: Request) -> None:
    if server.api_key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {server.api_key}".encode()):
        raise RequestError(401, "Incorrect or missing API key (send Authorization: Bearer <key>)", "invalid_api_key")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the request body is not valid JSON: {err}") from None


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Response:
    return _json(error_body(message, status, code), status, headers)
