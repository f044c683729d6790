"""A client for any OpenAI-compatible server (vLLM, llama.cpp, Ollama, `posttrain serve`).

Each sample is its own request (n=1) with its own seed, `sample_seed(seed, prompt, index)`, exactly as the local
backend seeds each (prompt, index): a sample is reproducible whatever else is in flight, and a resumed stage asks
the server for the same thing again. Requests run concurrently on one event loop, bounded by a semaphore.

Failures a retry can fix (no connection, timeouts, 429, 5xx) are retried with exponential backoff and jitter;
failures it cannot (bad key, unknown model, a request the server rejects) raise `InputError` at once, naming the
URL and the server's own message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import random
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import httpx

from posttrain.errors import InputError
from posttrain.models.backend import Completion, SamplingParams, as_messages, sample_seed

T = TypeVar("T")

RETRY_STATUS = frozenset({408, 429})  # plus every 5xx
MAX_BACKOFF = 30.0


class OpenAIBackend:
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
        tokenizer: str | None = None,
        backoff: float = 0.5,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise InputError(
                f"openai backend: base URL must start with http:// or https://, got '{base_url}'"
            )
        if concurrency < 1 or retries < 0:
            raise InputError("openai backend: concurrency must be >= 1 and retries >= 0")
        # Users paste either the server root or its /v1 root; both mean the same server.
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.tokenizer_spec = tokenizer
        self._tokenizer: Any = None
        self.model = model or _run(self._first_model())
        self.name = self.model

    # -- public API ----------------------------------------------------------------------------------------
    def generate(self, prompts: list[Any], n: int, params: SamplingParams) -> list[list[Completion]]:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        bodies = [[self.chat_body(p, params, j) for j in range(n)] for p in prompts]
        flat = _run(self._post_all("/v1/chat/completions", [b for row in bodies for b in row]))
        return [[_completion(r) for r in flat[i * n : (i + 1) * n]] for i in range(len(prompts))]

    def logprobs(self, prompt: Any, completion: str) -> list[float]:
        """Per-token logprobs of `completion` from the server's prompt logprobs (`/v1/completions`, echo=true).

        The chat template is rendered here, so this needs the model's tokenizer locally (`tokenizer=`): chat
        endpoints do not return logprobs of the prompt, and only the template tells where the completion starts.
        """
        if not completion:
            return []
        context = self._render(prompt)
        text = context + completion
        body = {
            "model": self.model, "prompt": text, "echo": True, "logprobs": 0, "max_tokens": 1,
            "temperature": 0.0, "add_special_tokens": False,  # the template already holds BOS and turn markers
        }  # fmt: skip
        (response,) = _run(self._post_all("/v1/completions", [body]))
        info = _choice(response).get("logprobs") or {}
        offsets, values = info.get("text_offset"), info.get("token_logprobs")
        if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
            raise InputError(
                f"{self.base_url}/v1/completions returned no prompt logprobs (echo=true, logprobs=0): "
                "this server cannot score completions"
            )
        # Tokens starting inside the completion are its tokens; the one generated token starts past its end.
        return [float(v) for o, v in zip(offsets, values, strict=True) if len(context) <= o < len(text)]

    def chat_body(self, prompt: Any, params: SamplingParams, index: int) -> dict[str, Any]:
        """The request for sample `index` of `prompt`."""
        messages = as_messages(prompt)
        body: dict[str, Any] = {
            "model": self.model, "messages": messages, "n": 1, "max_tokens": params.max_new_tokens,
            "temperature": params.temperature, "top_p": params.top_p,
        }  # fmt: skip
        if params.stop:
            body["stop"] = list(params.stop)
        seed = sample_seed(params.seed, prompt, index)
        if seed is not None:
            body["seed"] = seed % 2**31  # llama.cpp and Ollama keep 32-bit seeds; 31 bits fit every server
        if params.top_k:
            body["top_k"] = params.top_k  # vLLM / llama.cpp extension; not part of OpenAI's API
        if messages[-1]["role"] == "assistant":
            # vLLM's extension to continue the last message instead of opening a new turn. Servers without it
            # either reject the fields (OpenAI: 400) or ignore them and answer in a new turn.
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return body

    # -- HTTP ----------------------------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=self.timeout, limits=limits)

    async def _first_model(self) -> str:
        async with self._client() as client:
            response = await self._request(client, "GET", "/v1/models")
        ids = _model_ids(response)
        if not ids:
            raise InputError(f"{self.base_url}/v1/models lists no models: give one as openai:<url>#<model>")
        return ids[0]

    async def _post_all(self, path: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(self.concurrency)
        async with self._client() as client:

            async def one(body: dict[str, Any]) -> dict[str, Any]:
                async with gate:
                    return await self._request(client, "POST", path, body)

            return await _gather_or_cancel([one(b) for b in bodies])

    async def _request(
        self, client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await client.request(method, path, json=body)
            except httpx.UnsupportedProtocol as err:
                raise InputError(f"{url}: {err}") from None
            except httpx.TransportError as err:
                if last:
                    raise InputError(
                        f"cannot reach {url} after {self.retries + 1} attempts "
                        f"({type(err).__name__}: {err or 'no detail'}): is the server running at this address?"
                    ) from None
                await asyncio.sleep(self._delay(attempt))
                continue
            status = response.status_code
            if status < 400:
                return _json(response, url)
            if (status in RETRY_STATUS or status >= 500) and not last:
                await asyncio.sleep(self._delay(attempt, response.headers.get("retry-after")))
                continue
            raise await self._http_error(client, url, response, body)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(MAX_BACKOFF, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        # Full jitter: clients retrying together after a server hiccup spread out instead of returning in lockstep.
        return random.uniform(0, min(MAX_BACKOFF, self.backoff * 2**attempt))

    async def _http_error(
        self, client: httpx.AsyncClient, url: str, response: httpx.Response, body: dict[str, Any] | None
    ) -> InputError:
        status, detail = response.status_code, _server_message(response)
        if status in (401, 403):
            key = "no API key was sent" if not self.api_key else "the API key was refused"
            return InputError(
                f"{url}: HTTP {status}, {key}: set OPENAI_API_KEY (or api_key=) to the server's key ({detail})"
            )
        if status == 404:
            return InputError(f"{url}: HTTP 404 ({detail}): {await self._not_found_hint(client, body)}")
        if status in RETRY_STATUS or status >= 500:
            return InputError(f"{url}: HTTP {status} after {self.retries + 1} attempts: {detail}")
        return InputError(f"{url}: the server rejected the request (HTTP {status}): {detail}")

    async def _not_found_hint(self, client: httpx.AsyncClient, body: dict[str, Any] | None) -> str:
        try:
            listing = await client.get("/v1/models")
            ids = _model_ids(listing.json()) if listing.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            ids = []
        if ids:
            model = (body or {}).get("model", self.model if hasattr(self, "model") else None)
            return f"model '{model}' is unknown here; the server serves: {', '.join(ids)}"
        return f"no such endpoint: is {self.base_url} the server's root (without /v1/...)?"

    # -- chat template for scoring -------------------------------------------------------------------------
    def _render(self, prompt: Any) -> str:
        if self.tokenizer_spec is None:
            raise InputError(
                "openai backend: logprobs need the model's tokenizer locally (tokenizer='embedded' or a local HF "
                "directory) and a server that returns prompt logprobs on /v1/completions (echo=true), as vLLM does"
            )
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from posttrain.models.embedded import resolve_model_path

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(self.tokenizer_spec))
        if getattr(self._tokenizer, "chat_template", None) is None:
            raise InputError(f"tokenizer '{self.tokenizer_spec}' has no chat template")
        messages = as_messages(prompt)
        continuing = messages[-1]["role"] == "assistant"
        return str(
            self._tokenizer.apply_chat_template(
                messages,
                tokenize=False,
                add_generation_prompt=not continuing,
                continue_final_message=continuing,
            )
        )


# ---------------------------------------------------------------------------------------------------- helpers


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code; inside a running loop (a notebook, an async app) on a private thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _gather_or_cancel(coros: list[Awaitable[T]]) -> list[T]:
    """gather(), but the first failure cancels the other requests instead of leaving them running."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise InputError(
            f"{url}: the server answered with something that is not JSON: {response.text[:200]!r}"
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"{url}: expected a JSON object, got {type(data).__name__}")
    return data


def _server_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(data, dict) and isinstance(data.get("message") or data.get("detail"), str):
        return str(data.get("message") or data.get("detail"))
    return str(data)[:300]


def _model_ids(listing: dict[str, Any]) -> list[str]:
    data = listing.get("data") if isinstance(listing, dict) else None
    return [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]


def _choice(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InputError(f"the server's response has no choices: {str(response)[:200]}")
    return choices[0]


def _completion(response: dict[str, Any]) -> Completion:
    choice = _choice(response)
    message = choice.get("message") or {}
    usage = response.get("usage") or {}
    reason = choice.get("finish_reason")
    return Completion(
        text=str(message.get("content") or ""),
        # 0 when a server sends no usage: unknown, and token counts only feed statistics
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        # "length" is the one reason callers act on; anything else (content_filter, ...) is kept as sent
        finish_reason="stop" if reason in (None, "stop", "eos") else str(reason),
    )
