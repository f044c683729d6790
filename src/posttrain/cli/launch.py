"""The `posttrain` command's first step: run under jemalloc when the machine has it, then hand over to the CLI.

Why: on CPU, PyTorch allocates tensors with the C library's malloc. A training step frees and reallocates
activation-sized blocks thousands of times; glibc serves them from a heap that fragments and keeps the freed pages,
so the process holds hundreds of MB more than its live tensors (docs/benchmarks.md: DPO job, ~400 MB). jemalloc
returns freed pages to the system after a short delay and fragments less. PyTorch's own CPU launcher
(`torch.backends.xeon.run_cpu`) preloads jemalloc or tcmalloc for the same reason.

The allocator can only be chosen before the process starts, so the command re-executes itself once with
`LD_PRELOAD` set. `POSTTRAIN_ALLOCATOR=system` keeps the C library's malloc; a `MALLOC_CONF` already set is kept.
A request for help only prints text, and `posttrain eval ifeval|ifbench --responses` only scores text files: both
run the same under either malloc, so they run as is and do not pay for a second interpreter start
(bench/startup.py measures what that costs).
Only on Linux, and only if the library is installed (Debian: `apt-get install libjemalloc2`; the install script
does it); otherwise the command runs as is. No heavy imports here: this runs before the CLI is loaded.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from collections.abc import Mapping, Sequence

# Freed pages go back to the system after 2 s (jemalloc's default is 10 s, then 10 s more as "muzzy" pages).
MALLOC_CONF = "dirty_decay_ms:2000,muzzy_decay_ms:0"
_DONE = "POSTTRAIN_ALLOCATOR_SET"  # set in the re-executed process, so it never loops


def jemalloc_env(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with, or None to run as is."""
    if (
        sys.platform != "linux"
        or environ.get(_DONE)
        or environ.get("POSTTRAIN_ALLOCATOR", "jemalloc") == "system"
    ):
        return None
    preload = environ.get("LD_PRELOAD", "")
    if "jemalloc" in preload or "tcmalloc" in preload:
        return None
    library = ctypes.util.find_library("jemalloc")  # a soname from the linker cache, e.g. libjemalloc.so.2
    if library is None:
        return None
    return {
        **environ,
        "LD_PRELOAD": f"{library} {preload}".strip(),
        "MALLOC_CONF": environ.get("MALLOC_CONF", MALLOC_CONF),
        _DONE: "1",
    }


def runs_as_is(args: Sequence[str]) -> bool:
    """`posttrain` alone, or `--help` anywhere (`posttrain eval ifeval --help`): the command prints help and exits;
    `posttrain eval ifeval|ifbench` without `--model`: it scores a responses file, no tensor in sight. An option value
    spelled `--help` (`--stop --help`) runs the command under the C library's malloc, nothing else."""
    scoring = args[:1] == ["eval"] and args[1:2] in (["ifeval"], ["ifbench"]) and "--model" not in args
    return not args or "--help" in args or scoring


def entry() -> None:
    env = None if runs_as_is(sys.argv[1:]) else jemalloc_env(os.environ)
    if env is not None:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    from posttrain.cli.main import entry as run

    run()
