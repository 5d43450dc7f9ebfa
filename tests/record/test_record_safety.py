"""The record refuses what would corrupt or lose it, and says so (issue 18, items 8-10): one writer per log_dir, a
failed gd.watch leaves no record behind, unreadable or damaged records are RecordErrors, a log_dir must be a path."""

from __future__ import annotations

import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd

watch_module = sys.modules["gradient_doctor.watch"]  # (gd.watch, the function, shadows the module's name)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))


def _record(log_dir: pathlib.Path, steps: int = 3, resume: bool = False) -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=log_dir, resume=resume, detail_every=1) as run:
        for _ in range(steps):
            loss = model(torch.randn(5, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.step(loss=loss)


# -- one writer per log_dir ---------------------------------------------------------------------


def test_a_second_writer_on_one_log_dir_is_refused_in_the_same_process(tmp_path):
    _record(tmp_path)
    first = gd.watch(_model(), log_dir=tmp_path, resume=True)
    with pytest.raises(gd.RecordError, match=rf"being written by another run \(process {os.getpid()}\)"):
        gd.watch(_model(), log_dir=tmp_path, resume=True)
    first.close()
    with gd.watch(_model(), log_dir=tmp_path, resume=True):  # released at close()
        pass


HOLDER = textwrap.dedent("""
    import sys, torch
    from torch import nn
    import gradient_doctor as gd
    run = gd.watch(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)), log_dir=sys.argv[1], resume=True)
    print("HOLDING", flush=True)
    sys.stdin.readline()
""")


def test_a_second_process_with_resume_is_refused_until_the_first_ends_even_by_sigkill(tmp_path):
    _record(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HOLDING"
        with pytest.raises(gd.RecordError, match=rf"process {holder.pid}"):
            _record(tmp_path, resume=True)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    _record(tmp_path, steps=2, resume=True)  # the operating system dropped the killed writer's lock
    np.testing.assert_array_equal(gd.load(tmp_path).steps, np.arange(5))


# -- a failed gd.watch leaves nothing behind ----------------------------------------------------


def test_a_watch_that_fails_to_start_removes_the_record_it_began(tmp_path, monkeypatch):
    log_dir = tmp_path / "new" / "run"

    class Broken(watch_module.Probe):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("simulated failure after the record was created")

    monkeypatch.setattr(watch_module, "Probe", Broken)
    with pytest.raises(RuntimeError, match="simulated failure"):
        gd.watch(_model(), log_dir=log_dir)
    assert not log_dir.exists()  # the log_dir it made, and run.db, are gone
    monkeypatch.undo()
    _record(log_dir)  # the retry on the same log_dir works
    assert len(gd.load(log_dir).steps) == 3


def test_a_tensorboard_view_that_cannot_start_leaves_no_record(tmp_path):
    pytest.importorskip("tensorboard")
    (tmp_path / "afile").write_text("not a directory")
    with pytest.raises(Exception):  # the events directory cannot be made under a file
        gd.watch(_model(), log_dir=tmp_path / "run", tensorboard=tmp_path / "afile" / "tb")
    assert not (tmp_path / "run" / "run.db").exists()
    _record(tmp_path / "run")


def test_a_failed_resume_keeps_the_existing_record(tmp_path):
    _record(tmp_path)
    with pytest.raises(gd.RecordError, match="cannot resume"):
        gd.watch(nn.Linear(3, 3), log_dir=tmp_path, resume=True)  # another model
    assert len(gd.load(tmp_path).steps) == 3


# -- unreadable and damaged records -------------------------------------------------------------


def test_load_of_a_directory_this_user_may_not_read_is_a_record_error(tmp_path, monkeypatch):
    _record(tmp_path / "run")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "is_file", denied)  # what stat() raises in a directory without x permission
    with pytest.raises(gd.RecordError, match="Permission denied") as err:
        gd.load(tmp_path / "run")
    assert str(tmp_path / "run") in str(err.value)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads every directory")
def test_load_of_an_unreadable_directory_is_a_record_error(tmp_path):
    _record(tmp_path / "run")
    os.chmod(tmp_path / "run", 0)
    try:
        with pytest.raises(gd.RecordError):
            gd.load(tmp_path / "run")
    finally:
        os.chmod(tmp_path / "run", 0o755)


def _corrupt(log_dir: pathlib.Path, sql: str) -> None:
    with sqlite3.connect(log_dir / "run.db") as db:
        db.execute(sql)
    db.close()


@pytest.mark.parametrize("sql, read, match", [
    ("UPDATE series SET data = X'00112233445566' WHERE metric = 'grad_norm' AND step = 1",
     lambda run: run.history("grad_norm"), "'grad_norm' blob is not little-endian float64"),
    ("UPDATE series SET data = X'00112233' WHERE metric = 'grad_log10' AND step = 1",
     lambda run: run.gradient_histograms(), "'grad_log10' blob"),
    ("UPDATE params SET shape = '[3, 4' WHERE idx = 0", lambda run: run.history("grad_norm", layer="0.weight"),
     "shape or layers are not the JSON lists"),
    ("UPDATE step_values SET value = 'abc' WHERE name = 'loss' AND step = 0", lambda run: run.history("loss"),
     "'loss' holds a value that is not a number"),
])
def test_a_damaged_blob_or_field_is_a_record_error(tmp_path, sql, read, match):
    _record(tmp_path)
    _corrupt(tmp_path, sql)
    with pytest.raises(gd.RecordError, match=match) as err:
        read(gd.load(tmp_path))
    assert str(tmp_path / "run.db") in str(err.value)


@pytest.mark.parametrize("call", [lambda: gd.load(5), lambda: gd.watch(_model(), log_dir=5)])
def test_a_log_dir_that_is_not_a_path_is_an_invalid_type(call):
    with pytest.raises(gd.InvalidType, match=r"log_dir must be a directory \(str or pathlib.Path\), got int: 5"):
        call()
