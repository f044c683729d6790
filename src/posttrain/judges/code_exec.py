"""The code judge: run the response's Python code against the gold unit tests in the sandbox (`sandbox.py`).

The code is the last ```python block (or the last fenced block of any language when none is tagged python). The
gold is either assert-style test code run after the solution in the same namespace (HumanEval/MBPP style), or
APPS-style stdin/stdout cases: a JSON object `{"inputs": [...], "outputs": [...]}` (or that dict itself).

value 1: every test passed; 0: no code block, a failing test, an exception, a resource limit or the wall-clock
timeout (the solution's fault); -1: the sandbox could not run at all (the judge's fault). Samples run in parallel
on threads: each one is a separate process, so threads are enough to use every core.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from posttrain.errors import InputError
from posttrain.judges.base import Item, Judge, Judgment
from posttrain.judges.sandbox import SandboxLimits, run_python
from posttrain.models.backend import available_cores

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    """The last ```python (or ```py / ```python3) block; else the last fenced block of any language."""
    blocks = _FENCE.findall(text)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    chosen = python or [code for _, code in blocks]
    return chosen[-1] if chosen else None


def parse_tests(gold: Any) -> tuple[str | None, list[tuple[str, str]] | None]:
    """(assert-style test code, None) or (None, stdin/stdout cases) from a gold value."""
    if isinstance(gold, str):
        stripped = gold.strip()
        if stripped.startswith("{"):
            try:
                gold = json.loads(stripped)
            except json.JSONDecodeError:
                return gold, None
        else:
            return gold, None
    if isinstance(gold, dict) and "inputs" in gold and "outputs" in gold:
        inputs, outputs = gold["inputs"], gold["outputs"]
        if len(inputs) != len(outputs):
            raise InputError(f"code tests: {len(inputs)} inputs but {len(outputs)} outputs")
        return None, [(_as_text(i), _as_text(o)) for i, o in zip(inputs, outputs, strict=True)]
    raise InputError("code judge gold must be test code (asserts) or {'inputs': [...], 'outputs': [...]}")


def _as_text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


class CodeJudge(Judge):
    name = "code"
    requires_gold = True

    def __init__(
        self,
        cpu_seconds: int = 3,
        wall_seconds: float = 6.0,
        memory_mb: int = 1024,
        workers: int | None = None,
    ) -> None:
        self.limits = SandboxLimits(cpu_seconds=cpu_seconds, wall_seconds=wall_seconds, memory_mb=memory_mb)
        self.workers = workers or available_cores()

    def judge_items(self, items: Sequence[Item]) -> list[Judgment]:
        if len(items) <= 1 or self.workers <= 1:
            return [self.safe_one(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self.safe_one, items))

    def judge_one(self, item: Item) -> Judgment:
        code = extract_code(item.completion)
        if code is None:
            return Judgment(0, 0.0, "no ``` code block in the response")
        tests, cases = parse_tests(item.gold)
        result = run_python(code, tests, io_cases=cases, limits=self.limits)
        if result.status == "error":
            return Judgment(-1, None, f"sandbox error: {result.summary()}")
        if result.passed:
            return Judgment(1, 1.0, f"all tests passed in {result.seconds:.2f} s")
        return Judgment(0, 0.0, result.summary())
