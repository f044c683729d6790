"""Run untrusted Python (a model's code answer plus its unit tests) in a separate, limited process.

Layers, outermost first (each one is used when the machine has it; `SandboxResult.layers` says which ran):

- a fresh interpreter: `python -I -S` (isolated mode, no site-packages, no user site, no PYTHON* variables), an
  empty environment, a private temp directory as cwd, HOME and TMPDIR, stdin from /dev/null;
- `unshare --user --net --pid --fork --kill-child` (util-linux) where unprivileged user namespaces work: no network
  interface but loopback, and a PID namespace (the parent is not addressable; when the sandbox's first process
  dies, the kernel kills every process it started);
- its own session and process group, killed with SIGKILL at the wall-clock limit;
- inside the interpreter, before any untrusted code (see `_sandbox_boot.py`): rlimits (CPU seconds, 1 GiB of
  address space, a few processes, file size, open files), a Landlock ruleset (files, TCP, signals) and an audit hook;
- stdout/stderr go to files outside the sandbox directory, capped by RLIMIT_FSIZE, and only their first bytes are
  read back, so a flood of output costs neither memory nor disk.

What it does NOT protect against is documented in docs/methods/judges.md: in short, without Landlock the file
rules rest on the audit hook, which determined code can get around; kernel exploits are out of scope; and the
tests run in the solution's interpreter, so a solution written to attack the harness can fake a pass.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BOOT = Path(__file__).with_name("_sandbox_boot.py")
# System library directories the interpreter's shared objects live in; nothing secret sits below them.
_SYSTEM_READ_ROOTS = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/share/zoneinfo", "/etc/localtime")


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 3
    wall_seconds: float = 6.0
    memory_mb: int = 1024  # address space: a 10 GB allocation fails with MemoryError
    processes: int = 8  # RLIMIT_NPROC (counted per user; enforced inside a user namespace, not for real root)
    file_size_mb: int = 4  # any single file, stdout and stderr included
    open_files: int = 64
    output_bytes: int = 16_384  # how much of stdout/stderr is read back for the verdict's detail


@dataclass
class SandboxResult:
    status: str  # "passed" | "failed" | "timeout" | "error" (the sandbox itself failed: a judge failure)
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    cpu_seconds: float = 0.0
    layers: list[str] = field(default_factory=list)
    cpu_limit: int = 0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def summary(self) -> str:
        """One line for a verdict's detail: what happened, in the solution's words when it said anything."""
        if self.status == "timeout":
            return "timed out (wall-clock limit)"
        noise = ('{"sandbox_layers"', "unshare:")  # our own bookkeeping and unshare's complaints
        said = [line for line in self.stderr.splitlines() if line.strip() and not line.startswith(noise)]
        if said:
            return said[-1][:300]
        if self.cpu_limit and self.cpu_seconds >= self.cpu_limit - 0.25:
            return f"killed at the CPU-time limit ({self.cpu_limit} s)"
        if self.returncode is not None and self.returncode < 0:
            return f"killed by {_signal_name(-self.returncode)}"
        return f"exit code {self.returncode}"


def run_python(
    solution: str,
    tests: str | None = None,
    *,
    io_cases: list[tuple[str, str]] | None = None,
    limits: SandboxLimits | None = None,
    namespaces: bool = True,
    landlock: bool = True,
    seccomp: bool = True,
    audit_hook: bool = True,
) -> SandboxResult:
    """Run `solution` then `tests` (assert-style code) in one sandboxed interpreter, or run `solution` as a
    stdin/stdout program once per `(input, expected_output)` case. Passing means no exception and, for
    programs, every output matching (trailing whitespace ignored). The layer switches exist for tests."""
    limits = limits or SandboxLimits()
    base = Path(tempfile.mkdtemp(prefix="posttrain-sandbox-"))
    try:
        work = base / "work"
        work.mkdir()
        nonce = secrets.token_hex(16)
        job = {
            "nonce": nonce,
            "solution": solution,
            "tests": tests,
            "io_cases": [list(case) for case in io_cases] if io_cases is not None else None,
            "limits": {k: v for k, v in vars(limits).items() if k not in ("wall_seconds", "output_bytes")},
            "work": str(work.resolve()),
            "read_roots": _read_roots(),
            "landlock": landlock,
            "seccomp": seccomp,
            "audit_hook": audit_hook,
        }
        job_file = base / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        command = [*(_namespace_prefix() if namespaces else []), sys.executable, "-I", "-S", "-c",
                   _BOOT.read_text(encoding="utf-8"), str(job_file)]  # fmt: skip
        return _execute(command, base, work, nonce, limits, namespaces and bool(_namespace_prefix()))
    finally:
        _remove_tree(base)


def _execute(
    command: list[str], base: Path, work: Path, nonce: str, limits: SandboxLimits, in_namespace: bool
) -> SandboxResult:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8"}
    start = time.monotonic()
    with open(base / "stdout", "wb") as out, open(base / "stderr", "wb") as err:
        try:
            # No preexec_fn: it is unsafe in a threaded parent (the code judge runs samples on threads); the
            # limits are set by the bootstrap instead, before any untrusted code runs.
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work, env=env,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError as error:
            return SandboxResult("error", None, "", f"could not start the sandbox: {error}", 0.0)
        try:
            status, cpu = _wait(proc, limits.wall_seconds)
        finally:
            _kill_group(proc.pid)  # also ends anything the solution started that is still running
            if proc.returncode is None:
                _wait(proc, None)
    seconds = time.monotonic() - start
    stdout = _read_head(base / "stdout", limits.output_bytes)
    stderr = _read_head(base / "stderr", limits.output_bytes)
    tail = _read_tail(base / "stdout", len(nonce) + 2)
    layers = (["namespaces"] if in_namespace else []) + _reported_layers(stderr)

    def result(kind: str) -> SandboxResult:
        shown = stdout.replace(nonce, "").rstrip()
        return SandboxResult(kind, proc.returncode, shown, stderr, seconds, cpu, layers, limits.cpu_seconds)

    if status == "timeout":
        return result("timeout")
    if "sandbox_layers" not in stderr:  # the bootstrap never got as far as the untrusted code
        return result("error")
    return result("passed" if proc.returncode == 0 and tail.strip() == nonce else "failed")


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[str, float]:
    """Wait with `wait4`, whose resource usage covers the sandbox's own waited-for children (unshare waits for
    the interpreter), so a CPU-limit kill can be told apart from a crash. Returns ("exited" | "timeout", cpu s)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return "exited", usage.ru_utime + usage.ru_stime
        if deadline is not None and time.monotonic() >= deadline:
            return "timeout", 0.0
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_head(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        return handle.read(limit).decode("utf-8", "replace")


def _read_tail(path: Path, size: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - size))
        return handle.read().decode("utf-8", "replace")


def _reported_layers(stderr: str) -> list[str]:
    for line in stderr.splitlines()[:3]:
        if line.startswith('{"sandbox_layers"'):
            try:
                return list(json.loads(line)["sandbox_layers"])
            except (json.JSONDecodeError, KeyError, TypeError):
                return []
    return []


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _read_roots() -> list[str]:
    """Directories the sandboxed interpreter may read: its own installation and the system libraries."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    for name in ("stdlib", "platstdlib"):
        roots.add(os.path.realpath(sysconfig.get_paths()[name]))
    roots.add(os.path.realpath(os.path.dirname(sys.executable)))
    return sorted(roots | {p for p in _SYSTEM_READ_ROOTS if os.path.exists(p)})


@functools.lru_cache(maxsize=1)
def _namespace_prefix() -> tuple[str, ...]:
    """`unshare` arguments for new user, network and PID namespaces, if they work here (probed once)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--user", "--net", "--pid", "--fork", "--kill-child")
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return prefix if probe.returncode == 0 else ()


def _remove_tree(path: Path) -> None:
    def make_writable(function: Any, target: str, _exc: Any) -> None:  # a solution may chmod its own files
        os.chmod(os.path.dirname(target), 0o700)
        function(target)

    try:
        shutil.rmtree(path, onerror=make_writable)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


def sandbox_layers() -> list[str]:
    """The layers a sandboxed run gets on this machine (runs a trivial program once)."""
    return run_python("pass", "").layers
