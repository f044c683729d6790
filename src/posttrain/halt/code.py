"""HALT's code domain: an answer's code split into its top-level functions, each checked by its unit tests.

A problem carries `tests`: a mapping from a function name to assert-style test code for that function. The
answer's code is the last ```python block (as the `code` judge reads it). Its fragments are the top-level
functions that have tests, in the order written; anything else (imports, helpers, constants) joins the next
tested function, and what follows the last one joins it. Fragment i is checked by running the code of
fragments 0..i and then the tests of its function in the sandbox (`judges/sandbox.py`), so a function may
use what came before it.

Verdicts: 1 the tests pass, 0 they fail (or the code does not parse: one fragment, wrong), -1 the sandbox
could not run. A function the problem tests but the answer never writes is simply missing (it lowers
completeness).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence

from posttrain.halt.fragments import Fragment, before_marker
from posttrain.records import Prompt

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)  # as the `code` judge reads blocks


def tests_of(problem: Prompt) -> dict[str, str]:
    tests = getattr(problem, "tests", None)
    return {str(k): str(v) for k, v in tests.items()} if isinstance(tests, dict) else {}


def check_ground_truth(problem: Prompt) -> None:
    tests = getattr(problem, "tests", None)
    if not isinstance(tests, dict) or not tests:
        raise ValueError(
            "no ground truth: 'tests' (a mapping of function name -> assert-style test code) is missing"
        )
    for name, code in tests.items():
        if not str(name).isidentifier():
            raise ValueError(f"'tests' key {name!r} is not a function name")
        try:
            ast.parse(str(code))
        except SyntaxError as err:
            raise ValueError(
                f"the tests of {name!r} are not parseable Python: {err.msg} (line {err.lineno})"
            ) from None


def _code_span(answer: str) -> tuple[int, int] | None:
    """(start, end) of the last fenced block's code in the answer (python-tagged blocks preferred)."""
    blocks = list(_FENCE.finditer(answer))
    python = [b for b in blocks if b.group(1).lower() in ("python", "py", "python3")]
    chosen = python or blocks
    return (chosen[-1].start(2), chosen[-1].end(2)) if chosen else None


def split_functions(answer: str, tested: Sequence[str] = ()) -> list[Fragment]:
    """The answer's tested top-level functions as fragments (spans in the answer). With no `tested` names every
    top-level function is one. Code that does not parse is one fragment named ''."""
    visible, _ = before_marker(answer)
    span = _code_span(visible)
    if span is None:
        return []
    start, end = span
    code = visible[start:end]
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [Fragment(code, start, end)] if code.strip() else []
    line_starts = [0]
    for line in code.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    fragments: list[Fragment] = []
    pending: int | None = None
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        node_start, node_end = line_starts[first - 1], line_starts[node.end_lineno or node.lineno]
        tested_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and (
            not tested or node.name in tested
        )
        if not tested_function or not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending = node_start if pending is None else pending
            continue
        begin = node_start if pending is None else pending
        fragments.append(Fragment(code[begin:node_end], start + begin, start + node_end, node.name))
        pending = None
    if pending is not None and fragments:
        last = fragments[-1]
        fragments[-1] = Fragment(visible[last.start : end], last.start, end, last.name)
    return fragments


class CodeFunctionGrader:
    """Runs each fragment's function tests in the sandbox after the code of the fragments before it."""

    name = "code-tests"

    def __init__(self, cpu_seconds: int = 3, wall_seconds: float = 6.0, memory_mb: int = 1024) -> None:
        from posttrain.judges.sandbox import SandboxLimits

        self.limits = SandboxLimits(cpu_seconds=cpu_seconds, wall_seconds=wall_seconds, memory_mb=memory_mb)

    def grade(self, problem: Prompt, fragments: Sequence[Fragment]) -> list[tuple[int, str]]:
        from posttrain.judges.sandbox import run_python

        tests = tests_of(problem)
        out: list[tuple[int, str]] = []
        for i, fragment in enumerate(fragments):
            if not fragment.name:
                out.append((0, "the code does not parse"))
                continue
            code = "".join(f.text if f.text.endswith("\n") else f.text + "\n" for f in fragments[: i + 1])
            result = run_python(code, tests[fragment.name], limits=self.limits)
            if result.status == "error":
                out.append((-1, f"sandbox error: {result.summary()}"))
            elif result.passed:
                out.append((1, f"{fragment.name}: tests pass"))
            else:
                out.append((0, f"{fragment.name}: {result.summary()}"))
        return out
