"""The policy's weights from the training process to the generation actors by a collective broadcast
(`generation.ray.weight_sync: broadcast`), instead of through Ray's object store.

The training process (rank 0) and the N actors (ranks 1..N) form a process group of their own: a `TCPStore` served
by the training process and a gloo or NCCL group built on it directly, not `torch.distributed.init_process_group`,
so the training process's default group (DDP under accelerate, or none) is left alone. After every update the
training process broadcasts each parameter in a fixed order and every actor receives it into a buffer of the
sender's dtype, then copies it into its model (casting to bf16 where the actor samples in bf16).

Why: through the object store the weights are serialised into shared memory and copied out by every actor; a
broadcast moves them once, and with NCCL between GPUs it never leaves the devices, which is how RL systems with GPU
inference engines sync (OpenRLHF, verl, TRL's vLLM server). gloo is used when the sender's weights are on the CPU
(tested here on a local cluster); NCCL when they are on a GPU and the actors hold GPUs (written, not run here:
there is no GPU on this machine).

A group has a fixed membership: an actor that dies cannot rejoin it, so with this sync the actors are not
restarted and a dead actor stops the run with the error naming its share.
"""

from __future__ import annotations

import datetime
import socket
from typing import Any

import torch
import torch.distributed as dist

TIMEOUT = datetime.timedelta(minutes=10)  # a peer that never arrives (a dead actor) fails the call after this


def open_port(host: str) -> int:
    """A free TCP port on `host` for the group's store (the store binds it right after)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def join_group(host: str, port: int, rank: int, world: int, backend: str, timeout: datetime.timedelta = TIMEOUT) -> Any:
    """Join the group whose store rank 0 serves at host:port; returns the process group. Blocks until all `world`
    members have joined."""
    store = dist.TCPStore(host, port, world, is_master=rank == 0, timeout=timeout)
    if backend == "gloo":
        return dist.ProcessGroupGloo(store, rank, world, timeout)
    if backend == "nccl":  # untested here (no GPU); a CUDA build of torch has it
        options = dist.ProcessGroupNCCL.Options()
        options._timeout = timeout
        return dist.ProcessGroupNCCL(store, rank, world, options)
    raise ValueError(f"unknown collective backend {backend!r}")


def broadcast(group: Any, tensor: torch.Tensor) -> None:
    """Rank 0 sends `tensor`; every other rank receives into its `tensor` (same shape and dtype)."""
    options = dist.BroadcastOptions()
    options.rootRank = 0
    group.broadcast([tensor], options).wait()


def specs(named_parameters: list[tuple[str, torch.Tensor]]) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(name, shape, dtype) of every parameter in send order: what a receiver allocates."""
    return [(name, tuple(p.shape), p.dtype) for name, p in named_parameters]


def send(group: Any, tensors: list[torch.Tensor]) -> None:
    for tensor in tensors:
        broadcast(group, tensor.detach().contiguous())


def receive(group: Any, model: Any, parameter_specs: list[tuple[str, tuple[int, ...], torch.dtype]], device: str) -> None:
    """Receive every parameter of `parameter_specs` in order into `model` (by name)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, shape, dtype in parameter_specs:
            buffer = torch.empty(shape, dtype=dtype, device=device)
            broadcast(group, buffer)
            params[name].copy_(buffer)
