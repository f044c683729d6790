"""Running numbered batches on Ray and handing their results back in batch order.

Results are consumed in submission order whatever order the workers finish in, so a stage writes its records in
the same order as the single-process stage does (the files are byte-identical), and an interrupted stage has
written a prefix of them, which its resume (by record id) continues from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from posttrain.errors import InputError


def ordered_results(
    batches: list[Any], submit: Callable[[int, Any], Any], window: int, describe: Callable[[Any], str]
) -> Iterator[tuple[Any, Any]]:
    """Yield (batch, result) in batch order; `submit(slot, batch)` starts a batch on Ray and returns its ObjectRef,
    `slot` being which of the `window` concurrent places it takes (a sampling actor, say). At most `window`
    batches run at once, so results do not pile up in the object store ahead of the writer."""
    import ray

    running: dict[Any, tuple[int, int]] = {}  # ObjectRef -> (batch number, slot)
    finished: dict[int, Any] = {}
    free = list(range(window))
    submitted = emitted = 0
    while emitted < len(batches):
        while free and submitted < len(batches):
            slot = free.pop(0)
            running[submit(slot, batches[submitted])] = (submitted, slot)
            submitted += 1
        (ref,), _ = ray.wait(list(running), num_returns=1)
        number, slot = running.pop(ref)
        free.append(slot)
        finished[number] = result_of(ref, describe(batches[number]))
        while emitted in finished:
            yield batches[emitted], finished.pop(emitted)
            emitted += 1


def result_of(ref: Any, what: str) -> Any:
    """A batch's result. A user error inside a worker stays an InputError; anything else is raised with the
    worker's traceback (Ray's message carries it) and names the records that caused it."""
    import ray

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, InputError):
            raise err.cause from None
        raise RuntimeError(f"{what} failed on a Ray worker:\n{err}") from None
    except ray.exceptions.RayActorError as err:  # the actor died more often than it may be restarted
        raise RuntimeError(f"{what}: its Ray actor died and retries are exhausted: {err}") from None
    except ray.exceptions.WorkerCrashedError as err:
        raise RuntimeError(f"{what}: its Ray worker crashed and retries are exhausted: {err}") from None
    except ray.exceptions.RayError as err:  # e.g. no worker could start (a broken environment on a node)
        raise RuntimeError(f"{what}: Ray could not run it: {type(err).__name__}: {err}") from None
