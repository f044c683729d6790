"""`posttrain serve` under load: concurrent requests batched into one backend call (each getting what it would get
alone), streaming as server-sent events, a full queue answered 429 (never a dropped connection), graceful
shutdown, and a short load test on a tiny model built from a config."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from posttrain.models import Completion, SamplingParams, load_backend
from posttrain.models.backend import as_messages
from posttrain.models.serve import BackendServer, make_server
from tests.train.conftest import tiny_llama


@contextmanager
def running(server: BackendServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "max_tokens": 8, **extra}


class EchoBackend:
    """A batching backend without a model: each prompt's text reversed, after `delay` seconds per call (or until
    `gate` opens); it records every call's prompts and seeds."""

    name = "echo"
    batch_size = 8

    def __init__(self, delay: float = 0.2, gate: threading.Event | None = None) -> None:
        self.delay, self.gate = delay, gate
        self.calls: list[tuple[list[str], list[int | None]]] = []

    def generate(
        self, prompts: list[Any], n: int, params: SamplingParams, seeds: list[int | None] | None = None
    ) -> list[list[Completion]]:
        texts = [as_messages(p)[-1]["content"] for p in prompts]
        self.calls.append((texts, list(seeds or [params.seed] * len(prompts))))
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.delay)
        return [[Completion(f"{t[::-1]}#{j}", 3, 2, "stop") for j in range(n)] for t in texts]

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError("a scripted generator: it only writes text, it scores nothing")


def _post_all(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    with httpx.Client(base_url=url, timeout=120, limits=limits) as client:
        with ThreadPoolExecutor(len(bodies)) as pool:
            return list(pool.map(lambda body: client.post("/v1/chat/completions", json=body), bodies))


def test_concurrent_requests_share_backend_calls_and_keep_their_own_seeds() -> None:
    backend = EchoBackend()
    with running(make_server(backend, "127.0.0.1", 0)) as url:
        replies = _post_all(url, [chat(f"request {i}", seed=i) for i in range(16)])
    assert [r.status_code for r in replies] == [200] * 16
    answers = [r.json()["choices"][0]["message"]["content"] for r in replies]
    assert answers == [f"request {i}"[::-1] + "#0" for i in range(16)]  # each request got its own answer
    assert len(backend.calls) < 16 and max(len(texts) for texts, _ in backend.calls) > 1  # batched
    assert all(len(texts) <= EchoBackend.batch_size for texts, _ in backend.calls)
    seeds = {text: seed for texts, seeds in backend.calls for text, seed in zip(texts, seeds, strict=True)}
    assert seeds == {f"request {i}": i for i in range(16)}  # each request's own seed, in a shared call


def test_a_full_queue_answers_429_in_openai_form_and_drops_no_connection() -> None:
    gate = threading.Event()
    backend = EchoBackend(delay=0, gate=gate)
    server = make_server(backend, "127.0.0.1", 0, max_batch=1, max_queue=2)
    with running(server) as url:
        with ThreadPoolExecutor(1) as later:
            opened = later.submit(lambda: (time.sleep(1.5), gate.set()))
            replies = _post_all(url, [chat(f"r{i}") for i in range(10)])
            opened.result()
    codes = sorted(r.status_code for r in replies)
    assert set(codes) == {200, 429} and codes.count(200) >= 2  # at least the two the queue holds got through
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and "at capacity" in refused.json()["error"]["message"]


def _events(response: httpx.Response) -> list[Any]:
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_stream_true_sends_openai_chunks_then_done() -> None:
    with running(make_server(EchoBackend(delay=0.05), "127.0.0.1", 0)) as url:
        request = chat("abc", n=2, stream=True, stream_options={"include_usage": True})
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=request, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len({c["id"] for c in chunks}) == 1
    text = {j: "".join(c["choices"][0]["delta"].get("content", "") for c in chunks
                       if c["choices"] and c["choices"][0]["index"] == j) for j in (0, 1)}  # fmt: skip
    assert text == {0: "cba#0", 1: "cba#1"}
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop", "stop"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4


def test_shutdown_finishes_the_requests_in_flight() -> None:
    backend = EchoBackend(delay=1.0)
    server = make_server(backend, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with ThreadPoolExecutor(2) as pool:
        flight = pool.submit(lambda: httpx.post(f"{server.url}/v1/chat/completions", json=chat("slow"), timeout=30))
        while not backend.calls:  # the request is in the backend
            time.sleep(0.02)
        pool.submit(server.shutdown).result(timeout=30)
        assert flight.result().status_code == 200
    server.server_close()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v1/models")


# ------------------------------------------------------------------------------------- a tiny real model


@pytest.fixture(scope="module")
def tiny_backend(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    from posttrain.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    path: Path = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_backend(str(path), threads=1, dtype="float32")


def test_a_short_load_test_on_a_tiny_model(tiny_backend: Any) -> None:
    """32 concurrent clients, then the same 32 requests one by one: the same answers, no dropped connection,
    fewer backend calls than requests; and a too-long prompt batched with them fails alone, with a 400."""
    bodies = [chat(f"Tell me about topic {i}.", seed=i, temperature=0.9) for i in range(32)]
    server = make_server(tiny_backend, "127.0.0.1", 0)
    with running(server) as url:
        start = time.perf_counter()
        together = _post_all(url, [*bodies, chat("word " * 600)])
        concurrent_seconds = time.perf_counter() - start
        calls = server.batcher.batches
        start = time.perf_counter()
        with httpx.Client(base_url=url, timeout=120) as client:
            alone = [client.post("/v1/chat/completions", json=body) for body in bodies]
        sequential_seconds = time.perf_counter() - start
    assert [r.status_code for r in together] == [200] * 32 + [400]
    assert "exceeds the model's context" in together[-1].json()["error"]["message"]
    assert [r.status_code for r in alone] == [200] * 32
    content = [[c["message"]["content"] for c in r.json()["choices"]] for r in together[:32]]
    assert content == [[c["message"]["content"] for c in r.json()["choices"]] for r in alone]
    assert calls <= 8  # batched: 33 requests in a handful of calls (16 a call)
    print(f"32 concurrent: {concurrent_seconds:.2f} s, one by one: {sequential_seconds:.2f} s")


def test_bad_queue_settings_stop_before_the_model_loads(capsys: pytest.CaptureFixture[str]) -> None:
    from posttrain.cli.main import main

    assert main(["serve", "--model", "no-such-model", "--port", "0", "--max-queue", "0"]) == 2
    assert "--max-batch and --max-queue must be at least 1" in capsys.readouterr().err
