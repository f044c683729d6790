"""The OpenAI-compatible client against real servers: `posttrain serve` over the embedded model, and a scripted
stdlib server for what a healthy server never does (fail, throttle, stall)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from posttrain.errors import InputError
from posttrain.models import SamplingParams, load_backend
from posttrain.models.hf import HFBackend
from posttrain.models.openai import OpenAIBackend
from posttrain.models.serve import make_server

PROMPTS = [
    "Write a haiku about rain.",
    "What is the capital of France? Answer in one sentence.",
    "List three fruits, one per line, and nothing else.",
]
KEY = "test-key"


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def hf() -> HFBackend:
    backend = load_backend("embedded", threads=1)
    assert isinstance(backend, HFBackend)
    return backend


@pytest.fixture(scope="module")
def url(hf: HFBackend) -> Iterator[str]:
    with running(make_server(hf, "127.0.0.1", 0, api_key=KEY)) as address:
        yield address


@pytest.fixture(scope="module")
def client(url: str) -> OpenAIBackend:
    return OpenAIBackend(url, api_key=KEY, retries=1, backoff=0.05)


# ------------------------------------------------------------------------------ against `posttrain serve`


@pytest.mark.model
def test_the_model_comes_from_v1_models_and_the_v1_suffix_is_optional(
    client: OpenAIBackend, url: str
) -> None:
    assert client.model == client.name == "embedded"
    assert OpenAIBackend(url + "/v1/", api_key=KEY).base_url == url
    backend = load_backend(f"openai:{url}#embedded", api_key=KEY)
    assert isinstance(backend, OpenAIBackend) and backend.model == "embedded"


@pytest.mark.model
def test_greedy_output_equals_the_local_backend(client: OpenAIBackend, hf: HFBackend) -> None:
    params = SamplingParams(max_new_tokens=16, temperature=0.0)
    remote, local = client.generate(PROMPTS, 1, params), hf.generate(PROMPTS, 1, params)
    assert remote == local  # text, token counts and finish reasons


@pytest.mark.model
def test_seeded_samples_are_reproducible_and_batch_independent(client: OpenAIBackend) -> None:
    params = SamplingParams(max_new_tokens=10, temperature=0.9, seed=3)
    together = client.generate(PROMPTS[:2], 2, params)
    alone = client.generate(PROMPTS[1:2], 2, params)
    assert [len(row) for row in together] == [2, 2]
    assert together[1] == alone[0]
    # n > 1: each index has its own seed (checked on the open-ended prompt; a factual one can repeat itself)
    assert together[0][0].text != together[0][1].text


@pytest.mark.model
def test_stop_strings_and_length(client: OpenAIBackend) -> None:
    (long,), (stopped,) = client.generate(
        ["Write a long story about a dragon.", "Count from 1 to 20, separated by commas."],
        1,
        SamplingParams(max_new_tokens=20, temperature=0.0, stop=("4",)),
    )
    assert long.finish_reason == "length" and long.completion_tokens == 20
    assert (
        stopped.finish_reason == "stop" and "4" not in stopped.text and stopped.text.strip().startswith("1")
    )


@pytest.mark.model
def test_a_final_assistant_message_is_continued(client: OpenAIBackend, hf: HFBackend) -> None:
    conversation = [
        {"role": "user", "content": "Name three colors."},
        {"role": "assistant", "content": "Here are three colors: red,"},
    ]
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    assert client.chat_body(conversation, params, 0)["continue_final_message"] is True
    assert client.generate([conversation], 1, params) == hf.generate([conversation], 1, params)


@pytest.mark.model
def test_logprobs_through_prompt_echo_match_the_local_backend(url: str, hf: HFBackend) -> None:
    scorer = OpenAIBackend(url, api_key=KEY, tokenizer="embedded")
    completion = "Paris is the capital of France."
    assert scorer.logprobs(PROMPTS[1], completion) == pytest.approx(
        hf.logprobs(PROMPTS[1], completion), abs=1e-4
    )
    with pytest.raises(InputError, match="need the model's tokenizer locally"):
        OpenAIBackend(url, api_key=KEY).logprobs(PROMPTS[1], completion)


@pytest.mark.model
def test_auth_unknown_model_and_rejected_requests_fail_at_once(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(InputError, match="HTTP 401, the API key was refused: set OPENAI_API_KEY"):
        OpenAIBackend(url, api_key="wrong")
    with pytest.raises(InputError, match="HTTP 401, no API key was sent"):
        OpenAIBackend(url, "embedded").generate(["hi"], 1, SamplingParams(max_new_tokens=2))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert OpenAIBackend(url).model == "embedded"  # the key comes from the environment
    with pytest.raises(InputError, match="model 'nope' is unknown here; the server serves: embedded"):
        OpenAIBackend(url, "nope", retries=3).generate(["hi"], 1, SamplingParams(max_new_tokens=2))
    started = time.perf_counter()
    with pytest.raises(InputError, match=r"rejected the request \(HTTP 400\).*exceeds the model's context"):
        OpenAIBackend(url, retries=3).generate(["word " * 9000], 1, SamplingParams(max_new_tokens=2))
    assert time.perf_counter() - started < 10  # not retried


def test_an_unreachable_server_is_a_clear_error_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with pytest.raises(
        InputError, match=rf"cannot reach {url}/v1/models after 2 attempts.*is the server running"
    ):
        OpenAIBackend(url, retries=1, backoff=0.05)
    assert time.perf_counter() - started < 3
    with pytest.raises(InputError, match="must start with http"):
        OpenAIBackend("localhost:8000")


# ------------------------------------------------------------------------------ against a scripted server


class ScriptedServer(ThreadingHTTPServer):
    """An OpenAI stand-in that answers with `statuses` first (then 200), each after `delay` seconds, and counts
    requests in flight. Its completion is the user message and the seed, so order and seeds are visible."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses, self.delay = list(statuses), delay
        self.requests = self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer

    def do_GET(self) -> None:
        self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        s = self.server
        with s.lock:
            s.requests += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            status = s.statuses.pop(0) if s.statuses else 200
        time.sleep(s.delay)
        with s.lock:
            s.in_flight -= 1
        if status != 200:
            self._send(status, {"error": {"message": f"scripted {status}"}}, {"Retry-After": "0"})
            return
        text = f"{body['messages'][-1]['content']}|{body.get('seed')}"
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_5xx_and_429_are_retried_until_the_server_answers() -> None:
    server = ScriptedServer([500, 503, 429])
    with running(server) as url:
        client = OpenAIBackend(url, retries=3, backoff=0.05)
        ((completion,),) = client.generate(["hello"], 1, SamplingParams(seed=None))
        assert completion.text == "hello|None" and completion.completion_tokens == 1
        assert server.requests == 4


def test_a_server_that_keeps_failing_is_a_clear_error_after_the_retries() -> None:
    server = ScriptedServer([500] * 10)
    with running(server) as url:
        with pytest.raises(InputError, match=r"chat/completions: HTTP 500 after 3 attempts: scripted 500"):
            OpenAIBackend(url, "scripted", retries=2, backoff=0.01).generate(["x"], 1, SamplingParams())
        assert server.requests == 3


def test_concurrency_is_bounded_and_results_keep_prompt_order() -> None:
    server = ScriptedServer([], delay=0.1)
    prompts = [f"p{i}" for i in range(10)]
    with running(server) as url:
        client = OpenAIBackend(url, concurrency=3)
        rows = client.generate(prompts, 2, SamplingParams(seed=1))
        assert server.max_in_flight == 3 and server.requests == 20
        assert [[c.text.split("|")[0] for c in row] for row in rows] == [[p, p] for p in prompts]
        seeds = {c.text.split("|")[1] for row in rows for c in row}
        assert len(seeds) == 20  # one seed per (prompt, index)
        assert client.generate(prompts, 2, SamplingParams(seed=1)) == rows


def test_generate_works_inside_a_running_event_loop() -> None:
    with running(ScriptedServer([])) as url:
        client = OpenAIBackend(url)

        async def inside() -> str:
            return client.generate(["from a notebook"], 1, SamplingParams(seed=None))[0][0].text

        assert asyncio.run(inside()) == "from a notebook|None"


def test_requests_carry_seeds_stops_and_the_continuation_flags() -> None:
    with running(ScriptedServer([])) as url:
        client = OpenAIBackend(url)
        params = SamplingParams(max_new_tokens=5, temperature=0.5, top_p=0.9, top_k=20, stop=("\n",), seed=2)
        body = client.chat_body("hi", params, 1)
        assert body["n"] == 1 and body["max_tokens"] == 5 and body["stop"] == ["\n"] and body["top_k"] == 20
        assert body["seed"] != client.chat_body("hi", params, 0)["seed"]
        assert "continue_final_message" not in body  # only sent when continuing: strict servers refuse it
        assert "seed" not in client.chat_body("hi", SamplingParams(seed=None), 0)
