"""Reading a run while it trains: every read is one consistent snapshot, never a failure (issue 18, item 1).

A writer subprocess trains and flushes every few steps while this process loops `gd.load(d).diagnose()`, reads
histories and runs `gradient-doctor show`; a record whose header is not written yet reads as `starting`.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.cli import main
from gradient_doctor.record.schema import DDL

WRITER = textwrap.dedent("""
    import os, sys, torch
    from torch import nn
    import gradient_doctor as gd
    log_dir, stop = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gd.watch(model, opt, log_dir=log_dir, flush_every=5, detail_every=3, activation_every=3) as run:
        step = 0
        while step < 200 or not os.path.exists(stop):  # until the reader has read enough, and at least 200 steps
            loss = model(torch.randn(4, 8)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step(); run.step(loss=loss)
            step += 1
            if step > 20000:
                sys.exit("the reader never said stop")
""")


def test_reader_loop_during_training_never_fails(tmp_path, capsys):
    log_dir, stop = tmp_path / "run", tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir), str(stop)])
    failures, lengths, reads = [], set(), 0
    try:
        deadline = time.monotonic() + 120
        while not (log_dir / "run.db").exists():
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not start its record"
            time.sleep(0.01)
        while writer.poll() is None:
            try:
                run = gd.load(log_dir)
                diagnosis = run.diagnose()
                steps, grad, loss = run.steps, run.history("grad_norm"), run.history("loss")
                assert grad.shape == (len(steps), len(run.layers)) and loss.shape == (len(steps),)
                np.testing.assert_array_equal(steps, np.arange(len(steps)))  # whole flushes, from step 0
                assert isinstance(diagnosis.healthy, bool)
                if reads % 5 == 0:
                    assert main(["show", str(log_dir)]) == 0
                lengths.add(len(steps))
            except Exception as err:  # noqa: BLE001 - every failure is counted and shown
                failures.append(f"{type(err).__name__}: {err}")
            reads += 1
            if reads >= 40 and len(lengths) >= 4:
                stop.touch()
        assert writer.wait(timeout=60) == 0
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    capsys.readouterr()
    assert failures == [], failures[:5]
    assert reads >= 40 and len(lengths) >= 4  # the reads saw the run grow, flush by flush
    assert len(gd.load(log_dir).steps) >= 200


def _train(model: nn.Module, opt: torch.optim.Optimizer, run, steps: int) -> None:
    for _ in range(steps):
        loss = model(torch.randn(4, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.step(loss=loss)


def test_a_loaded_run_is_a_snapshot_of_the_steps_recorded_when_loaded(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=tmp_path, flush_every=2, activation_every=1) as run:
        _train(model, opt, run, 4)  # steps 0 and 1 flushed as step 2 began
        reader = gd.load(tmp_path)
        before = {m: reader.history(m) for m in ("grad_norm", "act_std", "loss")}
        _train(model, opt, run, 6)  # three more flushes land while the reader is open
        np.testing.assert_array_equal(reader.steps, [0, 1])
        for metric, values in before.items():
            np.testing.assert_array_equal(reader.history(metric), values)
        assert np.isfinite(before["loss"]).all() and np.isfinite(before["act_std"][:, 1]).all()
        np.testing.assert_array_equal(gd.load(tmp_path).steps, np.arange(8))  # a fresh load sees the later flushes
    np.testing.assert_array_equal(gd.load(tmp_path).steps, np.arange(10))


@pytest.mark.parametrize("state", ["no tables yet", "tables, no header yet"])
def test_a_record_being_created_reads_as_starting(tmp_path, state):
    db = sqlite3.connect(tmp_path / "run.db")
    db.execute("PRAGMA journal_mode=WAL")  # what gd.watch writes first
    if state == "tables, no header yet":
        db.executescript(DDL)
    db.close()
    run = gd.load(tmp_path)
    assert "starting" in repr(run)
    assert run.layers == [] and len(run.steps) == 0 and run.history("grad_norm").shape == (0, 0)
    assert run.diagnose().findings == []
    assert main(["show", str(tmp_path)]) == 0
