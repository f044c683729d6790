"""A Rich progress bar for generation: prompts done out of total, and generated tokens per second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class GenerationProgress:
    def __init__(self, progress: Progress, task: Any):
        self._progress, self._task = progress, task
        self._tokens, self._start = 0, time.perf_counter()

    def advance(self, prompts: int, tokens: int) -> None:
        self._tokens += tokens
        rate = self._tokens / max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, advance=prompts, rate=f"{rate:,.0f} tok/s")


@contextmanager
def generation_progress(description: str, total: int, done: int = 0) -> Iterator[GenerationProgress]:
    """`done` prompts were finished before (a resumed stage): the bar starts there, the rate counts only new work.
    When the output is not a terminal Rich draws no live updates, only the final state, so logs stay clean."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
    )  # fmt: skip
    with progress:
        task = progress.add_task(description, total=total, completed=done, rate="")
        yield GenerationProgress(progress, task)
