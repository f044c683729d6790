"""What `import posttrain` does to the process: cap oneDNN's and ideep's per-shape kernel caches (bf16 on CPU)."""

import os
import subprocess
import sys

import pytest

CODE = "import os, posttrain; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])"


def _run(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    return subprocess.run(
        [sys.executable, "-c", CODE], env={**env, **env_extra}, capture_output=True, text=True, check=True
    ).stdout.split()


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, ["64", "64"]), ({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "1024", "LRU_CACHE_CAPACITY": "7"}, ["1024", "7"])],
)
def test_kernel_cache_caps_are_set_unless_the_user_set_them(given, expected):
    assert _run(given) == expected
