"""Cached, resumable stages: the machinery under `posttrain run`, independent of what the stages do.

A stage's *key* hashes its own config sections and the keys of the stages it reads from, so changing a setting
reruns exactly the stages downstream of it. Each stage writes into `runs/<name>/<stage>/`:
- `key` is written before the stage starts: a rerun with another key wipes the directory (stale partial files from
  another config must not be resumed); with the same key the stage resumes from its `*.partial` files;
- `done.json` (key, seconds) is written atomically last: a stage with a matching `done.json` is skipped.
So `kill -9` at any point and a rerun give the same final artifacts, and `--from STAGE` reruns from a stage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain.atomic import atomic_write_text
from posttrain.errors import InputError

CODE_VERSION = "1"  # bump when a stage's outputs change meaning, to invalidate old caches


@dataclass
class Stage:
    name: str
    run: Callable[[Path], None]  # writes the stage's artifacts into the given directory
    config: dict[str, Any]  # the settings this stage depends on
    after: list[str] = field(default_factory=list)  # stages whose artifacts it reads


@dataclass
class StageOutcome:
    name: str
    skipped: bool
    seconds: float


def stage_keys(stages: list[Stage]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for stage in stages:
        missing = [d for d in stage.after if d not in keys]
        if missing:
            raise ValueError(f"stage {stage.name} runs before {missing}")
        blob = json.dumps(
            [CODE_VERSION, stage.name, stage.config, [keys[d] for d in stage.after]], sort_keys=True, default=str
        )
        keys[stage.name] = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return keys


def read_done(stage_dir: Path) -> dict[str, Any] | None:
    try:
        done = json.loads((stage_dir / "done.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return done if isinstance(done, dict) else None


def run_stages(
    stages: list[Stage],
    run_dir: Path,
    from_stage: str | None = None,
    on_event: Callable[[str, str, float], None] = lambda stage, event, seconds: None,
) -> list[StageOutcome]:
    """Run the stages in order, skipping finished ones; `from_stage` forces that stage and all later ones.

    `on_event(stage, "start" | "done" | "cached", seconds)` reports progress (seconds of the run that made it).
    """
    names = [s.name for s in stages]
    if from_stage is not None and from_stage not in names:
        raise InputError(f"unknown stage '{from_stage}' for --from; stages are: {', '.join(names)}")
    keys = stage_keys(stages)
    forced = set(names[names.index(from_stage) :]) if from_stage else set()
    outcomes = []
    for stage in stages:
        stage_dir = run_dir / stage.name
        key = keys[stage.name]
        done = read_done(stage_dir)
        if stage.name not in forced and done is not None and done.get("key") == key:
            seconds = float(done.get("seconds", 0.0))
            on_event(stage.name, "cached", seconds)
            outcomes.append(StageOutcome(stage.name, True, seconds))
            continue
        key_file = stage_dir / "key"
        if stage.name in forced or not key_file.exists() or key_file.read_text().strip() != key:
            shutil.rmtree(stage_dir, ignore_errors=True)
        stage_dir.mkdir(parents=True, exist_ok=True)
        (stage_dir / "done.json").unlink(missing_ok=True)
        atomic_write_text(key_file, key)
        on_event(stage.name, "start", 0.0)
        start = time.perf_counter()
        stage.run(stage_dir)
        seconds = time.perf_counter() - start
        atomic_write_text(stage_dir / "done.json", json.dumps({"key": key, "seconds": round(seconds, 3)}))
        on_event(stage.name, "done", seconds)
        outcomes.append(StageOutcome(stage.name, False, seconds))
    return outcomes
