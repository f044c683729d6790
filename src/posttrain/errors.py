"""The one error type the CLI turns into `file:line: what is wrong` and exit code 2.

Everything a user can get wrong (a malformed record, an unknown config key, an unknown constraint id, an unknown
model name) raises `InputError`; every other exception is a bug in posttrain and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path

EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad user input. `str()` is the message the user sees: `where: what`."""

    def __init__(self, what: str, path: str | Path | None = None, line: int | None = None):
        self.what = what
        self.path = str(path) if path is not None else None
        self.line = line
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.path is None:
            return self.what
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.what}"
