"""The launcher re-executes `posttrain` under jemalloc when the library is installed, once, and can be told not to."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from posttrain.cli import launch

HAS_JEMALLOC = sys.platform == "linux" and ctypes.util.find_library("jemalloc") is not None


@pytest.fixture
def found(monkeypatch):
    monkeypatch.setattr(launch.sys, "platform", "linux")
    monkeypatch.setattr(launch.ctypes.util, "find_library", lambda name: f"lib{name}.so.2")


def test_preloads_jemalloc_with_the_default_conf_and_keeps_other_preloads(found):
    env = launch.jemalloc_env({"PATH": "/bin", "LD_PRELOAD": "libfoo.so"})
    assert env is not None
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libfoo.so"
    assert env["MALLOC_CONF"] == launch.MALLOC_CONF
    assert env["PATH"] == "/bin"
    assert launch.jemalloc_env(env) is None  # the re-executed process does not loop


def test_a_users_malloc_conf_is_kept(found):
    env = launch.jemalloc_env({"MALLOC_CONF": "narenas:1"})
    assert env is not None and env["MALLOC_CONF"] == "narenas:1"


@pytest.mark.parametrize(
    "environ",
    [{"POSTTRAIN_ALLOCATOR": "system"}, {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, {"LD_PRELOAD": "libtcmalloc.so"}],
)
def test_runs_as_is_when_told_or_already_preloaded(found, environ):
    assert launch.jemalloc_env(environ) is None


def test_runs_as_is_without_the_library_or_off_linux(monkeypatch):
    monkeypatch.setattr(launch.ctypes.util, "find_library", lambda name: None)
    assert launch.jemalloc_env({}) is None
    monkeypatch.setattr(launch.ctypes.util, "find_library", lambda name: f"lib{name}.so.2")
    monkeypatch.setattr(launch.sys, "platform", "darwin")
    assert launch.jemalloc_env({}) is None


def _version_line(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "POSTTRAIN_ALLOCATOR_SET")}
    proc = subprocess.run(
        [sys.executable, "-m", "posttrain", "--version"], capture_output=True, text=True, env={**clean, **env}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.skipif(not HAS_JEMALLOC, reason="libjemalloc not installed (apt-get install libjemalloc2)")
def test_the_command_runs_under_jemalloc():
    assert "malloc: jemalloc" in _version_line()


def test_the_command_keeps_the_system_malloc_when_told():
    assert "malloc: system" in _version_line(POSTTRAIN_ALLOCATOR="system")


@pytest.mark.parametrize(
    "args",
    [[], ["--help"], ["eval", "ifeval", "--help"], ["eval", "ifeval", "--data", "d", "--responses", "r", "--out", "o"],
     ["eval", "ifbench", "--responses", "r", "--out", "o"]],
)  # fmt: skip
def test_help_and_scoring_run_without_re_executing(found, monkeypatch, args):
    # Help text and scores of a responses file are the same under any malloc; a second interpreter start would only
    # slow them down.
    monkeypatch.setattr(launch.sys, "argv", ["posttrain", *args])
    assert _executes(monkeypatch) is False


@pytest.mark.parametrize(
    "args", [["sample", "--prompts", "p.jsonl"], ["eval", "ifeval", "--model", "embedded", "--out", "o"],
             ["eval", "rubric", "--data", "d", "--out", "o"]],
)  # fmt: skip
def test_a_command_re_executes_under_jemalloc(found, monkeypatch, args):
    monkeypatch.setattr(launch.sys, "argv", ["posttrain", *args])
    assert _executes(monkeypatch) is True


def _executes(monkeypatch) -> bool:
    """Whether `launch.entry()` re-executes the process (the CLI itself is replaced by a no-op)."""
    for name in ("POSTTRAIN_ALLOCATOR_SET", "POSTTRAIN_ALLOCATOR", "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    calls: list[str] = []

    def execve(path, argv, env):
        calls.append(env["LD_PRELOAD"])
        raise SystemExit(0)  # what a real exec would look like from here: this process runs no further

    monkeypatch.setattr(launch.os, "execve", execve)
    monkeypatch.setattr("posttrain.cli.main.entry", lambda: None)
    try:
        launch.entry()
    except SystemExit:
        pass
    return bool(calls)
