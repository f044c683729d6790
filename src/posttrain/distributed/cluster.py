"""Reaching a Ray cluster, and refusing work it cannot place, before a stage writes anything.

The address is, in order: `--ray-address`, `ray.address` in the recipe, the `RAY_ADDRESS` environment variable;
with none, a local cluster is started on this machine's cores. Ray itself is an optional extra
(`pip install 'posttrain[ray]'`), imported only here and in the modules that run stages on it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Literal

from posttrain.errors import InputError

PROBE_SECONDS = 5.0  # ray.init retries an unreachable address for a minute; a TCP probe says so in seconds


@dataclass
class RaySection:
    """`executor: ray` settings of `posttrain run`, and `generation.ray` of the online loop (`generation.engine: ray`,
    where judge_batch is not used); the outputs depend on none of them."""

    address: str | None = None  # host:port of a running cluster, ray://host:10001, or "auto"; None: RAY_ADDRESS
    cpus_per_actor: int = 1  # CPU cores per sampling actor (its torch threads); the sample stage's resource ask
    gpus_per_actor: float = 0  # GPUs per sampling actor (1 per actor on a GPU node)
    actors: int | None = None  # sampling actors (default: as many as the cluster's nodes can place)
    judge_batch: int = 256  # samples per rule-judge task: Ray's per-task overhead (~ms) amortised over a batch
    max_retries: int = 3  # a batch whose worker died is retried this many times (restarting the actor)
    # The online loop only: how the policy's weights reach the generation actors after every update. object_store:
    # one copy in Ray's object store that each actor reads (restarted actors catch up); broadcast: a gloo/NCCL
    # broadcast from the training process (distributed/weight_sync.py; the actors are then never restarted).
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    # The online loop only: what each generation actor runs. hf: an HF backend of the policy (CPU or GPU). vllm: a
    # vLLM engine (one GPU each, `posttrain[vllm]`) built from the policy's checkpoint with `generation.vllm`'s engine
    # arguments, its weights replaced after every update (distributed/generation.py; not run here: no GPU).
    backend: Literal["hf", "vllm"] = "hf"

    def check(self, prefix: str = "ray.") -> None:
        """`prefix`: where the section sits in the config, for the messages (`generation.ray.` in the online loop)."""
        if self.cpus_per_actor < 1 or self.gpus_per_actor < 0:
            raise InputError(f"{prefix}cpus_per_actor must be at least 1 and {prefix}gpus_per_actor at least 0")
        if self.actors is not None and self.actors < 1:
            raise InputError(f"{prefix}actors must be at least 1, got {self.actors}")
        if self.judge_batch < 1 or self.max_retries < 0:
            raise InputError(f"{prefix}judge_batch must be at least 1 and {prefix}max_retries at least 0")


def require_ray(what: str = "executor=ray") -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(f"{what} needs Ray: pip install 'posttrain[ray]'") from None
    return ray


def resolve_address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


def connect(address: str | None) -> bool:
    """Join the cluster at `address` (see the module doc), or start a local one; nothing when already connected.
    Returns whether this call connected (the caller then owns the shutdown)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = resolve_address(address)
    if address and address not in ("auto", "local"):
        probe(address)
    try:
        # A local cluster needs no dashboard (its web server and agents cost memory and a core's worth of start-up).
        ray.init(address=address, include_dashboard=False, configure_logging=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise InputError(f"cannot connect to the Ray cluster at {address}: {err}") from None
    return True


def probe(address: str) -> None:
    """An InputError unless something listens at the address: a typo must not cost a minute of Ray's retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not host:port, ray://host:port, auto or local")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err) or type(err).__name__
        raise InputError(
            f"cannot reach the Ray cluster at {address}: {reason}; start one with `ray start --head` "
            "(then pass its address), or leave out --ray-address for a local cluster"
        ) from None


def placeable_actors(cpus: int, gpus: float) -> int:
    """How many actors of (cpus, gpus) the cluster's live nodes can hold at once; an InputError when no node can
    hold one (the actor would wait forever for resources that no node has)."""
    ray = require_ray()
    nodes: list[dict[str, float]] = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    fits = [min(n.get("CPU", 0) // cpus, n.get("GPU", 0) // gpus if gpus else float("inf")) for n in nodes]
    total = int(sum(fits))
    if total < 1:
        largest: dict[str, float] = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
        ask = f"{cpus} CPUs" + (f" and {gpus:g} GPUs" if gpus else "")
        have = f"{largest.get('CPU', 0):g} CPUs" + (f" and {largest.get('GPU', 0):g} GPUs" if gpus else "")
        raise InputError(
            f"no node of the Ray cluster has {ask} for a sampling actor (the largest has {have}); "
            "lower ray.cpus_per_actor / ray.gpus_per_actor, or add a larger node"
        )
    return total


def prepare(section: RaySection) -> int:
    """Everything `executor: ray` needs, checked before any stage runs: the settings, the cluster, the resources.
    Returns how many sampling actors will run."""
    section.check()
    connect(section.address)
    return actor_count(section)


def actor_count(section: RaySection) -> int:
    placeable = placeable_actors(section.cpus_per_actor, section.gpus_per_actor)
    if section.actors is not None and section.actors > placeable:
        raise InputError(
            f"ray.actors={section.actors} sampling actors of {section.cpus_per_actor} CPUs do not fit in the "
            f"cluster at once (it can place {placeable}); lower ray.actors or leave it out"
        )
    return section.actors or placeable
