"""Whole-file writes that never leave a half-written file: a temp file in the same directory, fsync, rename.

Its own module, free of pydantic, so commands that only score text files (`posttrain eval ifeval|ifbench
--responses`) do not import the record models to write their results.
"""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a whole file at once: temp file in the same directory, fsync, rename (the temp file removed if any step fails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:  # the old file stays as it was, and no temp file is left behind
        tmp.unlink(missing_ok=True)
        raise
