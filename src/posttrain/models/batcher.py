"""Dynamic batching for `posttrain serve`: requests wait in a bounded queue, and whenever the backend is free the
waiting requests that can share a call (same n and sampling options) go to it as one batch.

Backends are not thread-safe, so one thread makes every backend call, in arrival order of each batch's first
request. A backend whose `generate` takes per-prompt `seeds` (the transformers backend) batches requests that each
carry their own seed, and each still gets exactly the samples it would get alone. A full queue refuses at once
(`QueueFull`, the server's 429) instead of letting requests wait without bound.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from posttrain.errors import InputError
from posttrain.models.backend import Backend, Completion, SamplingParams

log = logging.getLogger("posttrain.serve")


class QueueFull(Exception):
    """More requests are waiting than the server accepts (`max_queue`)."""


class ShuttingDown(Exception):
    """The server is finishing the requests it has and takes no new ones."""


@dataclass
class Job:
    future: asyncio.Future[Any]
    prompt: Any = None
    n: int = 1
    params: SamplingParams = field(default_factory=SamplingParams)
    call: Callable[[Backend], Any] | None = None  # other backend work (prompt scoring), run alone

    def key(self, seeds_per_prompt: bool) -> Any:
        if self.call is not None:
            return None
        return (self.n, replace(self.params, seed=None) if seeds_per_prompt else self.params)


class Batcher:
    def __init__(self, backend: Backend, max_batch: int, max_queue: int) -> None:
        if max_batch < 1 or max_queue < 1:
            raise InputError("max_batch and max_queue must be at least 1")
        self.backend, self.max_batch, self.max_queue = backend, max_batch, max_queue
        self.seeds_per_prompt = "seeds" in inspect.signature(backend.generate).parameters
        self.waiting: deque[Job] = deque()
        self.running = 0  # requests in the backend call under way
        self.batches = 0  # backend calls made (a request per call would mean no batching happened)
        self.closing = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="posttrain-backend")
        self._wakeup: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None

    # -- the server's side ---------------------------------------------------------------------------------
    def submit(self, prompt: Any, n: int, params: SamplingParams) -> asyncio.Future[list[Completion]]:
        """Queue a request; raises `QueueFull` or `ShuttingDown` at once, before any response has started (so a
        streamed response can still answer with a status). Cancelling the future drops a request not yet run."""
        return self._enqueue(Job(self._future(), prompt, n, params))

    def submit_call(self, call: Callable[[Backend], Any]) -> asyncio.Future[Any]:
        """Any other backend work (prompt scoring), serialised with the generation batches."""
        return self._enqueue(Job(self._future(), call=call))

    @property
    def waiting_requests(self) -> int:
        return sum(not job.future.done() for job in self.waiting)

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._loop_task = asyncio.get_running_loop().create_task(self._serve())

    async def stop(self) -> None:
        """After the server drained its requests: end the loop and the backend thread."""
        self.closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
        self._thread.shutdown(wait=True)

    # -- internals -----------------------------------------------------------------------------------------
    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    def _enqueue(self, job: Job) -> asyncio.Future[Any]:
        if self.closing:
            raise ShuttingDown()
        if self.waiting_requests >= self.max_queue:
            raise QueueFull()
        self.waiting.append(job)
        assert self._wakeup is not None, "Batcher.start() was not called"
        self._wakeup.set()
        return job.future

    async def _serve(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.waiting:
                batch = self._next_batch()
                self.running = len(batch)
                try:
                    await self._execute(batch)
                except Exception as err:  # never let the loop die: every later request would wait forever
                    log.error("batch failed:\n%s", traceback.format_exc())
                    for job in batch:
                        _set_exception(job, err)
                finally:
                    self.running = 0
                    self.batches += 1

    def _next_batch(self) -> list[Job]:
        """The oldest request and the waiting ones that can share its backend call, up to max_batch prompts."""
        while self.waiting and self.waiting[0].future.done():  # its client went away
            self.waiting.popleft()
        if not self.waiting:
            return []
        head = self.waiting.popleft()
        key = head.key(self.seeds_per_prompt)
        batch = [head]
        if key is not None:
            for job in list(self.waiting):
                if len(batch) >= self.max_batch:
                    break
                if not job.future.done() and job.key(self.seeds_per_prompt) == key:
                    self.waiting.remove(job)
                    batch.append(job)
        return batch

    async def _execute(self, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        live = [job for job in batch if not job.future.done()]  # a client that went away was cancelled
        if not live:
            return
        if live[0].call is not None:
            await self._settle(live[0], loop.run_in_executor(self._thread, live[0].call, self.backend))
            return
        try:
            rows = await loop.run_in_executor(self._thread, self._generate, live)
        except InputError as err:
            if len(live) == 1:
                _set_exception(live[0], err)
                return
            for job in live:  # one bad request (say, a prompt too long) must not fail the others batched with it
                await self._settle(job, loop.run_in_executor(self._thread, self._generate, [job]), single=True)
            return
        except Exception as err:  # the server's bug or the backend's failure: every request in it gets a 500
            for job in live:
                _set_exception(job, err)
            return
        for job, row in zip(live, rows, strict=True):
            if not job.future.done():
                job.future.set_result(row)

    def _generate(self, jobs: list[Job]) -> list[list[Completion]]:
        prompts, head = [job.prompt for job in jobs], jobs[0]
        if self.seeds_per_prompt:
            seeds = [job.params.seed for job in jobs]
            return self.backend.generate(prompts, head.n, head.params, seeds=seeds)  # type: ignore[call-arg]
        return self.backend.generate(prompts, head.n, head.params)

    async def _settle(self, job: Job, work: asyncio.Future[Any], single: bool = False) -> None:
        try:
            result = await work
        except Exception as err:
            _set_exception(job, err)
            return
        if not job.future.done():
            job.future.set_result(result[0] if single else result)


def _set_exception(job: Job, err: BaseException) -> None:
    if not job.future.done():
        job.future.set_exception(err)
