"""Distributed runs stay in step (2 CPU processes, gloo): a stop decided on rank 0 stops every rank at
the same step; a probe error on one rank crashes it (no hang); a DTensor on a mesh smaller than the
world is counted once. Each join has a deadline: a hang fails the test instead of blocking it."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import gradient_doctor as gd
from tests.integrations.test_ddp import WORLD, _free_port
from tests.test_watch import make_mlp, mlp_batch

DEADLINE_S = 60
INF_AT = 2  # rank 0 records an infinite loss at this iteration; rank 1's losses stay finite


def _spawn(fn, *args) -> None:
    """Run fn(rank, port, *args) on WORLD processes; fail (not hang) if they have not ended by the deadline."""
    context = mp.spawn(fn, args=(_free_port(), *args), nprocs=WORLD, join=False)
    deadline = time.monotonic() + DEADLINE_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} processes did not finish within {DEADLINE_S} s (hang)")


def _init(rank: int, port: int) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)


def _stop_rank(rank: int, port: int, root: str) -> None:
    _init(rank, port)
    out = {"stopped_at": None}
    try:
        model = nn.parallel.DistributedDataParallel(make_mlp())
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with gd.watch(model, opt, stop_on={"non_finite"}, check_every=1) as run:
                    for s in range(8):
                        out["iteration"] = s
                        x, y = mlp_batch(s, 8)
                        opt.zero_grad()
                        loss = nn.functional.mse_loss(model(x), y)
                        loss.backward()
                        opt.step()
                        run.step(loss=float("inf") if rank == 0 and s == INF_AT else loss)
            except gd.TrainingStopped as stop:
                out["stopped_at"], out["kind"] = out["iteration"], stop.finding.kind
        out["submesh"] = _submesh_checks()
    finally:
        Path(root, f"rank{rank}.json").write_text(json.dumps(out))
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
        dist.destroy_process_group()
    os._exit(0)  # done: skip interpreter teardown, where gloo's threads now and then abort the process (SIGABRT)


def _submesh_checks() -> dict:
    """A DTensor sharded over a 1-rank sub-mesh of a (2, 1) mesh: each rank holds all of it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from gradient_doctor.probe.sharded import Shards

    mesh = init_device_mesh("cpu", (WORLD, 1), mesh_dim_names=("dp", "tp"))
    torch.manual_seed(3)
    full = torch.randn(6, 4, dtype=torch.float64)
    param = nn.Parameter(distribute_tensor(full, mesh["tp"], [Shard(0)]))
    shards = Shards([param])
    local_squares = torch.stack([t.square().sum() for t in shards.local])
    summed = float(shards.sum_squares(local_squares)[0])
    swapped = torch.full_like(full, 2.0)  # as FSDP2's reset_sharded_param swaps the local tensor
    param._local_tensor = swapped
    return {"sum_squares": summed, "want": float(full.square().sum()), "local_follows_swap": torch.equal(shards.local[0], swapped)}


def test_stop_on_a_finding_of_rank_0s_record_stops_every_rank_at_the_same_step(tmp_path):
    _spawn(_stop_rank, str(tmp_path))
    results = [json.loads(Path(tmp_path, f"rank{r}.json").read_text()) for r in range(WORLD)]
    # the infinite loss of iteration INF_AT is judged as the next optimizer step begins
    assert [r["stopped_at"] for r in results] == [INF_AT + 1] * WORLD
    assert {r["kind"] for r in results} == {"non_finite"}
    for r in results:  # a sub-mesh's entries are on every rank: counted once, not twice
        assert r["submesh"]["sum_squares"] == pytest.approx(r["submesh"]["want"], rel=1e-12)
        assert r["submesh"]["local_follows_swap"]


def _probe_error_rank(rank: int, port: int, out: str) -> None:
    _init(rank, port)
    try:
        model = nn.parallel.DistributedDataParallel(make_mlp())
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        with gd.watch(model, opt, update_every=1, activation_every=1) as run:
            if rank == 1:
                def broken():
                    raise RuntimeError("injected probe failure")

                run._probe.updates.measure = broken  # an internal error on rank 1 only
            for s in range(4):
                x, y = mlp_batch(s, 8)
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    except BaseException as error:  # each rank's own error, whichever process the spawn reports first
        Path(out, f"rank{rank}.txt").write_text(f"{type(error).__name__}: {error}\n{error.__cause__!r}")
        raise
    finally:
        dist.destroy_process_group()


def test_a_probe_error_on_one_rank_crashes_it_instead_of_hanging_the_others(tmp_path):
    # rank 1 raises; rank 0 then fails in its next collective. The spawn reports whichever process it sees first
    # (under load, rank 0's "remote worker crashed"): each rank's own error is read from its file.
    with pytest.raises(mp.ProcessRaisedException):
        _spawn(_probe_error_rank, str(tmp_path))
    told = Path(tmp_path, "rank1.txt").read_text()
    assert told.startswith("DistributedProbeError") and "rank 1 at step 0" in told
    assert "injected probe failure" in told
