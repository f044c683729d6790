"""Experiment tracking (`train.report_to`, as TRL's `report_to`): each metrics row a trainer writes to
`metrics.jsonl` also goes to TensorBoard, Weights & Biases or Trackio, through those libraries themselves.

- `tensorboard`: event files under `<output_dir>/tensorboard` (`tensorboard --logdir <output_dir>`).
- `wandb`: a run in project `$WANDB_PROJECT` (default `posttrain`) with its files under `<output_dir>`;
  `WANDB_MODE=offline` keeps it on disk (`wandb sync` uploads it later).
- `trackio`: a run in Trackio's local project `posttrain` (`trackio show`).

None of the three is a dependency of posttrain: naming one that is not installed is an input error, raised before
anything is written.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from posttrain.errors import InputError

TrackerName = Literal["tensorboard", "wandb", "trackio"]  # each is also the name of the package it needs
PROJECT = "posttrain"


class Tracker(Protocol):
    def log(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def check_report_to(names: Sequence[str]) -> None:
    for name in names:
        if importlib.util.find_spec(name) is None:
            raise InputError(f"train.report_to: {name} needs the '{name}' package, which is not installed")


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row, without its step (the x axis)."""
    numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {k: float(v) for k, v in numbers.items() if k != "step"}


def open_trackers(names: Sequence[str], out: Path, resume_step: int, config: dict[str, Any]) -> list[Tracker]:
    check_report_to(names)
    opened: dict[str, Any] = {"tensorboard": TensorBoard, "wandb": WandB, "trackio": Trackio}
    return [opened[name](out, resume_step, config) for name in names]


class TensorBoard:
    def __init__(self, out: Path, resume_step: int, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        # A resumed run redoes the steps after its checkpoint: TensorBoard drops the earlier events from there on,
        # as metrics.jsonl drops its lines.
        self._writer = SummaryWriter(str(out / "tensorboard"), purge_step=resume_step + 1)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, global_step=step)
        self._writer.flush()  # one write per optimizer step: the curves are current while the run goes on

    def close(self) -> None:
        self._writer.close()


class WandB:
    def __init__(self, out: Path, resume_step: int, config: dict[str, Any]):
        import wandb

        project = os.environ.get("WANDB_PROJECT", PROJECT)
        self._run = wandb.init(project=project, name=out.name, dir=str(out), config=config)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self._run.log(scalars, step=step)

    def close(self) -> None:
        self._run.finish()


class Trackio:
    def __init__(self, out: Path, resume_step: int, config: dict[str, Any]):
        import trackio

        self._trackio = trackio
        trackio.init(project=PROJECT, name=out.name, config=config)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self._trackio.log(scalars, step=step)

    def close(self) -> None:
        self._trackio.finish()
