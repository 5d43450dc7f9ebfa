"""DDP and FSDP2 with 2 CPU processes (gloo): the record equals a single-process plain-torch run on the full batch.

Each rank trains `DistributedDataParallel(make_mlp())` (or `make_mlp()` under FSDP2's `fully_shard`:
DTensor parameters, each rank holding half of every tensor) on its half of every batch (mean loss,
so the averaged gradients are the full batch's); the reference is `tests.test_watch.Reference` on
an unwrapped twin trained in this process on the full batches, with no gradient-doctor code.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import gradient_doctor as gd
from tests.test_watch import MLP_LAYERS, Reference, check_run, make_mlp, mlp_batch

STEPS = 3
WORLD = 2
BATCH = 16  # rank r trains on rows [8r, 8r + 8) of every batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrap(model: nn.Module, how: str) -> nn.Module:
    if how == "ddp":
        return nn.parallel.DistributedDataParallel(model)
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        if any(True for _ in layer.parameters()):
            fully_shard(layer)
    return fully_shard(model)


def _train_rank(rank: int, port: int, root: str, how: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = _wrap(make_mlp(), how)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        # every rank names its own log_dir so the test can see that rank 1 writes nothing
        with gd.watch(model, opt, log_dir=Path(root) / f"rank{rank}", detail_every=1, update_every=1,
                      activation_every=1) as run:
            for s in range(STEPS):
                x, y = mlp_batch(s, BATCH)
                half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x[half]), y[half])
                loss.backward()
                opt.step()
                run.step(loss=loss)
            assert run.layers == MLP_LAYERS  # the user's names, not "module.0"
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()
    os._exit(0)  # done: skip interpreter teardown, where gloo's threads now and then abort the process (SIGABRT)


@pytest.mark.parametrize("how", ["ddp", "fsdp2"])
def test_distributed_run_records_the_full_batch_statistics_on_rank_0_only(tmp_path, how):
    mp.spawn(_train_rank, args=(_free_port(), str(tmp_path), how), nprocs=WORLD, join=True)

    twin = make_mlp()  # the same initial weights, one process, full batches
    opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    ref = Reference(twin, opt)
    for s in range(STEPS):
        x, y = mlp_batch(s, BATCH)
        opt.zero_grad()
        nn.functional.mse_loss(twin(x), y).backward()
        opt.step()
    ref.close()

    assert not (tmp_path / "rank1").exists()  # only rank 0 writes
    run = gd.load(tmp_path / "rank0")
    # gradients, weights, updates and activations; under FSDP2 the norms of whole tensors, not of one shard
    want, _ = check_run(run, ref, MLP_LAYERS, atol=1e-9)
    # the pooled activation statistics are the full batch's, not one half's
    assert 4 / 12 <= want["dead_frac"][0, 5] < 1 and 0 < want["saturated_frac"][0, 1] < 1
    assert np.isfinite(run.history("act_std")[:, 1]).all()


GUARD_STEPS, POISONED = 6, 3


def _guarded_rank(rank: int, port: int, root: str, how: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = _wrap(make_mlp(), how)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        with gd.watch(model, opt, guard=True) as run:
            for s in range(GUARD_STEPS):
                x, y = mlp_batch(s, BATCH)
                half = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
                x = x[half].clone()
                if s == POISONED and rank == 1:  # only one rank sees the NaN; after the all-reduce both do
                    x[0, 0] = float("nan")
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y[half])
                loss.backward()
                opt.step()
                run.step(loss=loss)
        weights = [p.full_tensor() if hasattr(p, "full_tensor") else p.detach() for p in model.parameters()]
        torch.save({"weights": [w.clone() for w in weights],
                    "actions": [(i.step, i.kind) for i in run.interventions]}, Path(root) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)


@pytest.mark.parametrize("how", ["ddp", "fsdp2"])
def test_the_guard_takes_the_same_decision_on_every_rank(tmp_path, how):
    mp.spawn(_guarded_rank, args=(_free_port(), str(tmp_path), how), nprocs=WORLD, join=True)
    twin = make_mlp()  # one process, full batches, the poisoned step left out by hand
    opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    for s in range(GUARD_STEPS):
        if s == POISONED:
            continue
        x, y = mlp_batch(s, BATCH)
        opt.zero_grad()
        nn.functional.mse_loss(twin(x), y).backward()
        opt.step()
    for rank in range(WORLD):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        assert saved["actions"] == [(POISONED, "skipped_update")], (rank, saved["actions"])
        for mine, theirs in zip(saved["weights"], twin.parameters()):
            torch.testing.assert_close(mine, theirs.detach(), atol=1e-6, rtol=1e-5)
