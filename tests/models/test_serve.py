"""`posttrain serve`'s HTTP API, spoken to in raw HTTP: OpenAI's response shapes, request validation, auth, the
backend lock, and prompt scoring."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from posttrain.models import Completion, SamplingParams, load_backend
from posttrain.models.backend import as_messages
from posttrain.models.hf import HFBackend
from posttrain.models.openai import OpenAIBackend
from posttrain.models.serve import BackendServer, make_server

KEY = "secret"
CHAT = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 6}


@contextmanager
def running(server: BackendServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


class ShoutBackend:
    """A real, tiny Backend: it answers with the last message upper-cased, slowly, and notices if two calls ever
    overlap (backends are not thread-safe; the server must serialise them)."""

    name = "shout"

    def __init__(self) -> None:
        self.active = 0
        self.overlapped = False

    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        self.active += 1
        self.overlapped |= self.active > 1
        time.sleep(0.05)
        self.active -= 1
        text = as_messages(prompts[0])[-1]["content"].upper()[: params.max_new_tokens]
        return [[Completion(text, 1, len(text), "stop") for _ in range(n)]]

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        raise NotImplementedError


@pytest.fixture(scope="module")
def hf() -> HFBackend:
    backend = load_backend("embedded", threads=1)
    assert isinstance(backend, HFBackend)
    return backend


@pytest.fixture(scope="module")
def http(hf: HFBackend) -> Iterator[httpx.Client]:
    with running(make_server(hf, "127.0.0.1", 0, api_key=KEY)) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
            yield client


@pytest.mark.model
def test_models_listing(http: httpx.Client) -> None:
    listing = http.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [(m["id"], m["object"]) for m in listing["data"]] == [("embedded", "model")]


@pytest.mark.model
def test_chat_completion_with_n_and_seed_in_openai_format(http: httpx.Client) -> None:
    request = {**CHAT, "model": "embedded", "n": 2, "temperature": 0.9, "seed": 5}
    response = http.post("/v1/chat/completions", json=request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["object"] == "chat.completion"
        and body["model"] == "embedded"
        and body["id"].startswith("chatcmpl-")
    )
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(
        c["message"]["role"] == "assistant" and c["finish_reason"] in ("stop", "length")
        for c in body["choices"]
    )
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    again = http.post("/v1/chat/completions", json=request).json()
    assert [c["message"] for c in again["choices"]] == [c["message"] for c in body["choices"]]


@pytest.mark.model
def test_prompt_scoring_with_echo(http: httpx.Client) -> None:
    text = "The sky is blue."
    body = http.post(
        "/v1/completions", json={"prompt": text, "echo": True, "logprobs": 0, "max_tokens": 0}
    ).json()
    info = body["choices"][0]["logprobs"]
    assert "".join(info["tokens"]) == text and body["choices"][0]["text"] == text
    assert info["text_offset"] == sorted(info["text_offset"]) and info["text_offset"][0] == 0
    assert info["token_logprobs"][0] is None and all(v <= 0 for v in info["token_logprobs"][1:])
    one = http.post(
        "/v1/completions", json={"prompt": text, "echo": True, "logprobs": 0, "max_tokens": 1}
    ).json()
    scored = one["choices"][0]["logprobs"]["token_logprobs"]
    assert len(scored) == len(info["token_logprobs"]) + 1  # the prompt's tokens and one greedy token
    assert scored[1:-1] == pytest.approx(info["token_logprobs"][1:], abs=1e-5)
    assert one["usage"]["completion_tokens"] == 1 and one["choices"][0]["text"].startswith(text)
    refused = http.post("/v1/completions", json={"prompt": text, "max_tokens": 8})
    assert refused.status_code == 400 and "only scores prompts" in refused.json()["error"]["message"]


@pytest.mark.model
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "'messages' must be a non-empty list"),
        (b'{"messages": [{"role": "user", "content": 3}]}', "messages[0].content must be a string"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 0}', "'n' must be in [1, 128]"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "'temperature' must be a number",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}',
            "'max_tokens' must be an integer",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": [""]}', "'stop' must be"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "'stream' must be true or false"),
    ],
)
def test_bad_request_bodies_are_400_with_a_json_error(http: httpx.Client, body: bytes, message: str) -> None:
    response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


@pytest.mark.model
def test_unknown_model_and_route_are_404(http: httpx.Client) -> None:
    unknown = http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert http.post("/v1/embeddings", json={"input": "x"}).status_code == 404
    assert http.get("/v1/models").status_code == 200  # the connection survived the refused bodies


@pytest.mark.model
def test_the_api_key_is_checked(http: httpx.Client) -> None:
    url = str(http.base_url).rstrip("/")
    with httpx.Client(base_url=url) as anonymous:
        assert anonymous.get("/v1/models").status_code == 401
        wrong = anonymous.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        ok = anonymous.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200  # same keep-alive connection: the refused body was drained


def test_any_backend_is_served_one_call_at_a_time() -> None:
    backend = ShoutBackend()
    with running(make_server(backend, "127.0.0.1", 0)) as url:
        client = OpenAIBackend(url, concurrency=4)
        rows = client.generate(["a", "b", "c", "d"], 2, SamplingParams(max_new_tokens=8))
        assert [[c.text for c in row] for row in rows] == [["A", "A"], ["B", "B"], ["C", "C"], ["D", "D"]]
        assert not backend.overlapped
        scoring = httpx.post(
            f"{url}/v1/completions", json={"prompt": "x", "echo": True, "logprobs": 0, "max_tokens": 0}
        )
        assert scoring.status_code == 400 and "cannot score prompts" in scoring.json()["error"]["message"]


# ------------------------------------------------------------------------------ the `posttrain serve` command

SERVE_MAIN = """
import faulthandler, signal, sys
# A suite started in the background (`cmd &` in a script) inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler: the server would rightly ignore the test's Ctrl-C. The test is about a terminal's Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)
faulthandler.register(signal.SIGUSR1)  # the test asks for every thread's stack if shutdown hangs
from posttrain.cli import main as cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.model
def test_the_serve_command_serves_until_interrupted() -> None:
    port = _free_port()
    args = [
        sys.executable,
        "-c",
        SERVE_MAIN,
        "serve",
        "--port",
        str(port),
        "--api-key",
        KEY,
        "--threads",
        "1",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                models = httpx.get(
                    f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
                )
                break
            except httpx.ConnectError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
                time.sleep(0.2)
        assert models.json()["data"][0]["id"] == "embedded"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            pytest.fail(f"no exit 30 s after SIGINT; thread stacks:\n{proc.communicate()[1]}")
    assert proc.returncode == 0, err
    assert f"serving 'embedded' at http://127.0.0.1:{port}/v1" in out


def test_a_taken_port_is_a_clear_error_before_the_model_loads() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-c", SERVE_MAIN, "serve", "--model", "no-such-model", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in proc.stderr
