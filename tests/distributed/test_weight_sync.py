"""The broadcast group of `weight_sync: broadcast` without Ray: three processes (a sender, an fp32 and a bf16
receiver) on gloo, and the default process group left alone."""

from __future__ import annotations

import multiprocessing

import torch
import torch.distributed as dist

from posttrain.distributed.generation import weights_checksum
from posttrain.distributed.weight_sync import join_group, open_port, receive, send, specs
from tests.train.conftest import tiny_llama

VOCAB = 64


def member(rank: int, port: int, dtype: torch.dtype, out: multiprocessing.Queue) -> None:
    torch.set_num_threads(1)
    model = tiny_llama(VOCAB, seed=rank).to(dtype)  # the receivers start from other weights
    group = join_group("127.0.0.1", port, rank, 3, "gloo")
    sender = tiny_llama(VOCAB, seed=0)
    if rank == 0:
        send(group, [p for _, p in model.named_parameters()])
    else:
        receive(group, model, specs(list(sender.named_parameters())), "cpu")
    out.put((rank, weights_checksum(model.named_parameters()), dist.is_initialized()))


def test_a_broadcast_gives_every_receiver_the_senders_weights_in_its_own_dtype():
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per member, as a Ray actor is
    out = context.Queue()
    port = open_port("127.0.0.1")
    members = [context.Process(target=member, args=(rank, port, dtype, out))
               for rank, dtype in ((0, torch.float32), (1, torch.float32), (2, torch.bfloat16))]  # fmt: skip
    for process in members:
        process.start()
    results = {rank: (checksum, default_group) for rank, checksum, default_group in (out.get(timeout=240) for _ in members)}
    for process in members:
        process.join(timeout=60)
        assert process.exitcode == 0
    sender = tiny_llama(VOCAB, seed=0)
    assert results[0][0] == results[1][0] == weights_checksum(sender.named_parameters())
    assert results[2][0] == weights_checksum(sender.to(torch.bfloat16).named_parameters())
    assert not any(default_group for _, default_group in results.values())  # init_process_group never called
