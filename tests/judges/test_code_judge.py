"""The code judge and its sandbox: correct answers pass, wrong ones fail, and an attack corpus stays contained.

Each attack must end with verdict 0 or -1 while this process stays alive, nothing appears outside the sandbox's
temp directory, and it takes seconds (CPU limit 2 s, wall 5 s).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from posttrain.judges import get_judge
from posttrain.judges.code_exec import extract_code, parse_tests
from posttrain.judges.sandbox import SandboxLimits, _namespace_prefix, run_python

FAST = {"cpu_seconds": 2, "wall_seconds": 5.0}


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\nIt runs in O(n)."


def test_extract_code_prefers_the_last_python_block():
    text = "```python\nx = 1\n```\nthen\n```bash\nls\n```\nand\n```py\nx = 2\n```"
    assert extract_code(text) == "x = 2\n"
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"
    assert extract_code("no code at all") is None


def test_gold_formats():
    assert parse_tests("assert f(1) == 2") == ("assert f(1) == 2", None)
    assert parse_tests('{"inputs": ["1\\n"], "outputs": ["2\\n"]}') == (None, [("1\n", "2\n")])
    assert parse_tests({"inputs": [["1", "2"]], "outputs": [["3"]]}) == (None, [("1\n2", "3")])


def test_assert_tests_pass_and_fail():
    judge = get_judge("code", **FAST)
    gold = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    right = fenced("def add(a, b):\n    return a + b")
    wrong = fenced("def add(a, b):\n    return a - b")
    out = judge.judge([{"prompt": "add", "gold": gold}] * 3, [right, wrong, "I would use a loop."])
    assert [j.value for j in out] == [1, 0, 0]
    assert "AssertionError" in out[1].detail and "tests line 1" in out[1].detail
    assert "no ``` code block" in out[2].detail


def test_stdin_stdout_cases_apps_style():
    gold = {"inputs": ["3\n1 2 3\n", "1\n5\n"], "outputs": ["6\n", "5\n"]}
    right = fenced("n = int(input())\nprint(sum(map(int, input().split())))\nexit()")  # exit() at the end is fine
    wrong = fenced("n = int(input())\nprint(n)")
    out = get_judge("code", **FAST).judge(["sum"] * 2, [right, wrong], gold=[gold, json.dumps(gold)])
    assert [j.value for j in out] == [1, 0]
    assert "case 0: expected '6\\n', got '3\\n'" in out[1].detail


def test_early_exit_cannot_skip_the_tests():
    gold = "assert False, 'the tests ran'"
    for code in ("import sys\nsys.exit(0)", "import os\nos._exit(0)"):
        (j,) = get_judge("code", **FAST).judge([{"prompt": "x", "gold": gold}], [fenced(code)])
        assert j.value == 0, (code, j.detail)


def test_stdlib_that_needs_frames_and_threads_still_works():
    code = "import collections, enum, threading, dataclasses, fractions\nP = collections.namedtuple('P', 'x y')\n"
    code += "t = threading.Thread(target=print); t.start(); t.join()\n"
    result = run_python(code, "assert P(1, 2).y == 2", limits=SandboxLimits(**FAST))
    assert result.passed, result.summary()


ATTACKS = {
    "read /etc/passwd": "print(open('/etc/passwd').read())",
    "read ~/.ssh": "import os\nprint(os.listdir({home!r} + '/.ssh'))",  # the real home: HOME is the temp dir
    "read this repo": f"print(open({str(Path(__file__).resolve())!r}).read())",
    "open a socket": "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=2)",
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "subprocess": "import subprocess\nsubprocess.run(['sh', '-c', 'echo pwned > /tmp/pwned'])",
    "allocate 10 GB": "x = bytearray(10 * 1024 ** 3)",
    "infinite loop": "while True:\n    pass",
    "sleep forever": "import time\ntime.sleep(1000)",
    "write outside tmp": "open({marker!r}, 'w').write('pwned')",
    "kill the parent": "import os, signal\nos.kill({pid}, signal.SIGKILL)",
    "kill the parent pid": "import os\nos.kill(os.getppid(), 9)",
    "huge stdout": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
    "ctypes": "import ctypes\nctypes.CDLL(None).kill({pid}, 9)",
}


def test_attack_corpus_is_contained(tmp_path):
    marker = tmp_path / "outside" / "pwned.txt"
    marker.parent.mkdir()
    completions = [fenced(code.format(marker=str(marker), pid=os.getpid(), home=str(Path.home()))) for code in ATTACKS.values()]
    start = time.monotonic()
    out = get_judge("code", workers=4, **FAST).judge([{"prompt": "x", "gold": "pass"}] * len(ATTACKS), completions)
    elapsed = time.monotonic() - start
    for (name, _), j in zip(ATTACKS.items(), out, strict=True):
        assert j.value in (0, -1), f"{name}: {j.detail}"
    assert not marker.exists()
    assert not Path("/tmp/pwned").exists()
    assert elapsed < 40, elapsed  # 14 runs, the slowest bounded by the CPU and wall limits
    details = dict(zip(ATTACKS, (j.detail for j in out), strict=True))
    assert "timed out" in details["sleep forever"]
    assert "CPU-time limit" in details["infinite loop"] or "timed out" in details["infinite loop"]
    assert "MemoryError" in details["allocate 10 GB"]


@pytest.mark.skipif(not _namespace_prefix(), reason="unprivileged user namespaces are not available here")
def test_the_kernel_layers_hold_without_the_audit_hook(tmp_path):
    """With the in-process audit hook off, the namespaces, seccomp and Landlock still contain the attacks."""
    marker = tmp_path / "pwned.txt"
    layers = " ".join(run_python("pass", "", audit_hook=False).layers)
    needs = {"open a socket": "namespaces", "fork bomb": "seccomp", "write outside tmp": "landlock",
             "read /etc/passwd": "landlock", "read this repo": "landlock"}  # fmt: skip
    checked = 0
    for name, layer in needs.items():
        if layer not in layers:
            continue  # this kernel lacks the layer; the audit hook is the only guard there (see the docs)
        code = ATTACKS[name].format(marker=str(marker), pid=os.getpid(), home=str(Path.home()))
        result = run_python(code, "", limits=SandboxLimits(**FAST), audit_hook=False)
        assert result.status in ("failed", "timeout"), (name, result.summary())
        assert "sandbox:" not in result.summary()  # refused by the kernel, not by the hook
        checked += 1
    assert not marker.exists()
    assert checked >= 1


def test_output_is_capped_and_read_back_partially():
    result = run_python("print('y' * 100_000)", "", limits=SandboxLimits(output_bytes=1000, **FAST))
    assert result.passed and len(result.stdout) == 1000


def test_sandbox_failure_is_a_judge_failure(monkeypatch):
    import posttrain.judges.sandbox as sandbox

    monkeypatch.setattr(sandbox.sys, "executable", "/nonexistent/python")
    (j,) = get_judge("code", **FAST).judge([{"prompt": "x", "gold": "pass"}], [fenced("pass")])
    assert j.value == -1 and "sandbox error" in j.detail
