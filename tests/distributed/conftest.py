"""A local 2-CPU Ray cluster per test module (the modules skip themselves when Ray is not installed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    import ray

    # Workers import the test modules (crash-injecting backends, tiny models) and torch with one thread each.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A worker that imports torch on a busy 2-core machine can take over Ray's default 60 s to register.
    os.environ.setdefault("RAY_worker_register_timeout_seconds", "600")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()
