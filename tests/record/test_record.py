"""The run record: crash safety, cross-process reading, load() errors, live/loaded agreement, resume.

Every number is checked against an independent computation (plain torch, sqlite3 + numpy), except
where a test is precisely about the live run and the loaded record agreeing with each other.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradient_doctor as gd
from gradient_doctor.probe.metrics import LAYER_METRICS

# -- helpers ---------------------------------------------------------------------------------


def own_sq(module: nn.Module, what: str) -> float:
    """Sum of squares (float64) of a module's own parameters ("weight") or their gradients ("grad")."""
    total = 0.0
    for p in module.parameters(recurse=False):
        t = p.grad if what == "grad" else p
        if t is not None:
            total += t.detach().double().pow(2).sum().item()
    return total


class Shuffled(nn.Module):
    """Registered head, act, body, mid; called body → act → mid → head."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(5, 2)
        self.act = nn.Tanh()
        self.body = nn.Linear(3, 7)
        self.mid = nn.Linear(7, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mid(self.act(self.body(x))))


FORWARD = ["body", "act", "mid", "head"]


def train_shuffled(model, opt, run, steps, *, seed=1, detail_every=1, update_every=None, activation_every=None,
                   metrics=True):
    """Train `steps` steps; return plain-torch reference values per step (dict of name → [steps, layers])."""
    g = torch.Generator().manual_seed(seed)
    mods = [getattr(model, n) for n in FORWARD]
    ref = {k: [] for k in ("grad_norm", "weight_norm", "update_norm", "act_mean", "act_std", "loss", "acc", "tensor_metric")}
    for k in range(steps):
        x = torch.randn(16, 3, generator=g)
        y = torch.randint(0, 2, (16,), generator=g)
        with torch.no_grad():
            act = torch.tanh(model.body(x)).double()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        grads = [math.sqrt(own_sq(m, "grad")) if any(True for _ in m.parameters(recurse=False)) else math.nan for m in mods]
        before = [[p.detach().clone() for p in m.parameters(recurse=False)] for m in mods]
        opt.step()
        after = [[p.detach().clone() for p in m.parameters(recurse=False)] for m in mods]
        ref["grad_norm"].append(grads)
        weights = [math.sqrt(own_sq(m, "weight")) if b else math.nan for m, b in zip(mods, before)]
        ref["weight_norm"].append(weights if k % detail_every == 0 else [math.nan] * len(mods))
        upd = [
            math.sqrt(sum((a.double() - b.double()).pow(2).sum().item() for a, b in zip(aa, bb))) if bb else math.nan
            for aa, bb in zip(after, before)
        ]
        ref["update_norm"].append(upd if update_every and k % update_every == 0 else [math.nan] * len(mods))
        if activation_every and k % activation_every == 0:
            mean = act.mean().item()
            std = act.std(unbiased=False).item()
            ref["act_mean"].append([math.nan, mean, math.nan, math.nan])
            ref["act_std"].append([math.nan, std, math.nan, math.nan])
        else:
            ref["act_mean"].append([math.nan] * 4)
            ref["act_std"].append([math.nan] * 4)
        ref["loss"].append(loss.item())
        if metrics:
            acc = float(k) / 10
            ref["acc"].append(acc)
            if k % 2 == 0:  # a user metric given as a 1-element tensor, only on even steps
                tm = torch.tensor([k * 1.5 + 0.25])
                ref["tensor_metric"].append(tm.item())
                run.step(loss=loss, acc=acc, tensor_metric=tm)
            else:
                ref["tensor_metric"].append(math.nan)
                run.step(loss=loss, acc=acc)
    return {k: np.array(v, dtype=np.float64) for k, v in ref.items()}


def make_shuffled(seed=0):
    torch.manual_seed(seed)
    model = Shuffled()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, opt


# -- crash safety and cross-process reading ----------------------------------------------------

CHILD_COMMON = r"""
import json, math, os, sys, time
import torch
import torch.nn.functional as F
from torch import nn
import gradient_doctor as gd

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
log_dir, ref_path = sys.argv[1], sys.argv[2]
ref = {}

def save_ref():
    tmp = ref_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ref, f)
    os.replace(tmp, ref_path)

def train_step(run, step):
    x = torch.randn(32, 6)
    y = torch.randint(0, 3, (32,))
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    norms = [math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in model[i].parameters())) for i in (0, 2)]
    # the reference is on disk before optimizer.step() can flush this step into the record
    ref[str(step)] = {"grad_norm": norms, "loss": loss.item()}
    save_ref()
    opt.step()
    run.step(loss=loss)
"""

CHILD_KILLED = CHILD_COMMON + r"""
run = gd.watch(model, opt, log_dir=log_dir, flush_every=5)
start = time.time()
step = 0
while time.time() - start < 60:  # the test kills us long before this
    train_step(run, step)
    step += 1
    if step == 11:  # steps 0-9 are flushed as step 10 begins (flush_every=5)
        print("FLUSHED 10", flush=True)
    if step >= 10:
        time.sleep(0.01)
print("NOT KILLED", flush=True)
"""

CHILD_HANDSHAKE = CHILD_COMMON + r"""
run = gd.watch(model, opt, log_dir=log_dir, flush_every=5)
step = 0
for phase in range(2):
    # steps 5k..5k+4 are flushed as step 5k+5 begins, with the losses attached to them
    for _ in range(6 if phase == 0 else 5):
        train_step(run, step)
        step += 1
    print(f"PHASE {phase}", flush=True)
    sys.stdin.readline()
run.close()
print("DONE", flush=True)
"""


def _spawn(script: str, tmp_path: Path, **kwargs) -> tuple[subprocess.Popen, Path, Path, "queue.Queue[str]"]:
    log_dir, ref_path = tmp_path / "run", tmp_path / "ref.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(log_dir), str(ref_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kwargs,
    )
    lines: "queue.Queue[str]" = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return proc, log_dir, ref_path, lines


def _expect(proc: subprocess.Popen, lines: "queue.Queue[str]", wanted: str, timeout: float = 60) -> None:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        pytest.fail(f"child did not print {wanted!r} in {timeout} s; stderr: {proc.stderr.read()[-2000:]}")
    if line != wanted:
        proc.kill()
        pytest.fail(f"child printed {line!r}, expected {wanted!r}; stderr: {proc.stderr.read()[-2000:]}")


def _check_against_reference(run: gd.Run, ref: dict, steps: np.ndarray) -> None:
    assert run.layers == ["0", "1", "2"]
    grad = run.history("grad_norm")
    for row, step in enumerate(steps):
        expected = ref[str(step)]["grad_norm"]
        np.testing.assert_allclose(grad[row, [0, 2]], expected, rtol=1e-5, err_msg=f"step {step}")
        assert np.isnan(grad[row, 1])  # Tanh has no parameters


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_record_survives_sigkill_and_is_readable_while_training(tmp_path):
    proc, log_dir, ref_path, lines = _spawn(CHILD_KILLED, tmp_path)
    try:
        _expect(proc, lines, "FLUSHED 10")
        # read repeatedly in this process while the child keeps training and flushing
        seen = []
        deadline = time.time() + 30
        while (not seen or seen[-1] < 20) and time.time() < deadline:  # until two more flushes land
            reader = gd.load(log_dir)
            steps = reader.steps
            assert len(steps) % 5 == 0, f"a reader saw a partial flush: {steps}"
            np.testing.assert_array_equal(steps, np.arange(len(steps)))
            seen.append(len(steps))
            time.sleep(0.02)
        assert proc.poll() is None, "the child stopped before it was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert seen[0] >= 10 and seen == sorted(seen)
    assert seen[-1] > 10, "the reader never saw a flush made while it was reading"

    run = gd.load(log_dir)
    ref = json.loads(ref_path.read_text())
    steps = run.steps
    assert len(steps) >= max(seen)
    assert len(steps) % 5 == 0  # whole flushes only, never a torn one
    np.testing.assert_array_equal(steps, np.arange(len(steps)))
    assert len(ref) >= len(steps)
    _check_against_reference(run, ref, steps)
    # the loss attached after each optimizer.step() is flushed with its step
    loss = run.history("loss")
    expected_loss = np.array([ref[str(s)]["loss"] for s in steps])
    np.testing.assert_array_equal(loss, expected_loss)

    # the crashed record can be resumed: step numbers continue after the last recorded one
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with gd.watch(model, opt, log_dir=log_dir, resume=True):
        for _ in range(2):
            opt.zero_grad()
            model(torch.randn(4, 6)).sum().backward()
            opt.step()
    np.testing.assert_array_equal(gd.load(log_dir).steps, np.arange(len(steps) + 2))


def test_load_in_another_process_sees_each_flush(tmp_path):
    proc, log_dir, ref_path, lines = _spawn(CHILD_HANDSHAKE, tmp_path, stdin=subprocess.PIPE)
    try:
        _expect(proc, lines, "PHASE 0")
        reader = gd.load(log_dir)  # opened while the writer is live
        np.testing.assert_array_equal(reader.steps, np.arange(5))
        _check_against_reference(reader, json.loads(ref_path.read_text()), reader.steps)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _expect(proc, lines, "PHASE 1")
        # a loaded run is a snapshot: the same reader keeps its 5 steps, a fresh one sees the next flush
        np.testing.assert_array_equal(reader.steps, np.arange(5))
        reader = gd.load(log_dir)
        np.testing.assert_array_equal(reader.steps, np.arange(10))
        ref = json.loads(ref_path.read_text())
        _check_against_reference(reader, ref, reader.steps)
        expected_loss = np.array([ref[str(s)]["loss"] for s in range(11)])
        np.testing.assert_array_equal(reader.history("loss"), expected_loss[:10])
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _expect(proc, lines, "DONE")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # close() flushed the last step (10) and its loss
    np.testing.assert_array_equal(reader.history("loss"), expected_loss[:10])
    np.testing.assert_array_equal(gd.load(log_dir).history("loss"), expected_loss)


# -- load() of things that are not a readable record -------------------------------------------


def _tiny_record(log_dir: Path, steps: int = 2) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=log_dir) as run:
        for _ in range(steps):
            opt.zero_grad()
            loss = model(torch.randn(5, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            run.step(loss=loss)


def test_load_missing_dir(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(gd.RecordError, match="run.db") as err:
        gd.load(missing)
    assert str(missing) in str(err.value)


def test_load_empty_dir(tmp_path):
    with pytest.raises(gd.RecordError, match="run.db") as err:
        gd.load(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_load_garbage_file(tmp_path):
    path = tmp_path / "run.db"
    path.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(gd.RecordError, match="not a gradient-doctor run record") as err:
        gd.load(tmp_path)
    assert str(path) in str(err.value)


def test_load_sqlite_without_our_tables(tmp_path):
    path = tmp_path / "run.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE something (a INTEGER)")
        db.execute("INSERT INTO something VALUES (1)")
    db.close()
    with pytest.raises(gd.RecordError, match="no meta table") as err:
        gd.load(tmp_path)
    assert str(path) in str(err.value)


def test_load_sqlite_of_another_format(tmp_path):
    path = tmp_path / "run.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [("format", "other-tool-log"), ("schema_version", "1")])
    db.close()
    with pytest.raises(gd.RecordError) as err:
        gd.load(tmp_path)
    message = str(err.value)
    assert str(path) in message and "'other-tool-log'" in message and "'gradient-doctor-run'" in message


def test_load_future_schema_version(tmp_path):
    _tiny_record(tmp_path)
    with sqlite3.connect(tmp_path / "run.db") as db:
        db.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(gd.RecordError) as err:
        gd.load(tmp_path)
    message = str(err.value)
    assert str(tmp_path / "run.db") in message and "version 7" in message and "up to 1" in message
    # resuming it for writing is refused the same way
    with pytest.raises(gd.RecordError, match="version 7"):
        gd.watch(nn.Linear(3, 4), log_dir=tmp_path, resume=True)


def test_load_corrupt_schema_version(tmp_path):
    _tiny_record(tmp_path)
    with sqlite3.connect(tmp_path / "run.db") as db:
        db.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(gd.RecordError) as err:
        gd.load(tmp_path)
    assert "'two'" in str(err.value) and str(tmp_path / "run.db") in str(err.value)


def test_blobs_are_raw_float64_and_loading_never_unpickles(tmp_path, monkeypatch):
    _tiny_record(tmp_path, steps=3)

    def no_pickle(*args, **kwargs):
        raise AssertionError("the record must never be unpickled")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    run = gd.load(tmp_path)
    history = {m: run.history(m) for m in LAYER_METRICS}
    run.to_pandas()
    monkeypatch.undo()

    db = sqlite3.connect(f"{(tmp_path / 'run.db').as_uri()}?mode=ro", uri=True)
    meta = dict(db.execute("SELECT key, value FROM meta"))
    assert meta["format"] == "gradient-doctor-run" and meta["schema_version"] == "1"
    # layer idx is the blob column; position is the forward rank
    idx_by_position = [i for (i,) in db.execute("SELECT idx FROM layers ORDER BY position")]
    names = [n for (n,) in db.execute("SELECT name FROM layers ORDER BY position")]
    assert names == run.layers == ["0", "1", "2"]
    rows = db.execute("SELECT step, metric, data FROM series WHERE entity = 'layer'").fetchall()
    assert {m for _, m, _ in rows} == set(LAYER_METRICS)
    for step, metric, data in rows:
        assert isinstance(data, bytes) and len(data) == 8 * 3
        decoded = np.frombuffer(data, dtype="<f8")[idx_by_position]
        np.testing.assert_array_equal(history[metric][step], decoded)
    losses = db.execute("SELECT step, value FROM step_values WHERE name = 'loss' ORDER BY step").fetchall()
    np.testing.assert_array_equal(run.history("loss"), [v for _, v in losses])
    db.close()


# -- live vs loaded; forward order; metrics on the right step ------------------------------------


def test_live_and_loaded_agree_forward_order_and_values(tmp_path):
    pd = pytest.importorskip("pandas")
    model, opt = make_shuffled()
    assert [n for n, _ in model.named_children()] == ["head", "act", "body", "mid"]
    steps = 7
    with gd.watch(model, opt, log_dir=tmp_path, detail_every=2, update_every=2, activation_every=3,
                  flush_every=3) as run:
        ref = train_shuffled(model, opt, run, steps, detail_every=2, update_every=2, activation_every=3)
        live = {
            "layers": run.layers, "steps": run.steps, "metrics": run.metrics,
            "history": {m: run.history(m) for m in run.metrics}, "frame": run.to_pandas(),
        }
        concurrent = gd.load(tmp_path)  # read-only, while the live run holds the writer
        assert concurrent.layers == live["layers"]
        np.testing.assert_array_equal(concurrent.steps, live["steps"])
        for m in live["metrics"]:
            np.testing.assert_array_equal(concurrent.history(m), live["history"][m], err_msg=m)
    loaded = gd.load(tmp_path)

    # forward order, not registration order
    assert live["layers"] == FORWARD
    assert loaded.layers == FORWARD
    assert [d.name for d in loaded.layer_details] == FORWARD
    assert [d.kind for d in loaded.layer_details] == ["Linear", "Tanh", "Linear", "Linear"]
    assert [d.numel for d in loaded.layer_details] == [3 * 7 + 7, 0, 7 * 5 + 5, 5 * 2 + 2]

    # live == loaded, exactly
    np.testing.assert_array_equal(live["steps"], np.arange(steps))
    np.testing.assert_array_equal(loaded.steps, live["steps"])
    assert loaded.metrics == live["metrics"]
    assert set(live["metrics"]) == set(LAYER_METRICS) | {"loss", "acc", "tensor_metric", "input_nonfinite"}
    for m in live["metrics"]:
        np.testing.assert_array_equal(loaded.history(m), live["history"][m], err_msg=m)
    pd.testing.assert_frame_equal(loaded.to_pandas(), live["frame"])
    # after close, the run object itself reads the record (read-only)
    assert run.layers == FORWARD
    np.testing.assert_array_equal(run.history("grad_norm"), live["history"]["grad_norm"])

    # values against plain torch, in forward-order columns, on the right steps
    # (weight_norm of the parameter-free Tanh column is checked in its own test below)
    with_params = [0, 2, 3]
    for metric in ("grad_norm", "weight_norm", "update_norm", "act_mean", "act_std"):
        np.testing.assert_allclose(
            loaded.history(metric)[:, with_params], ref[metric][:, with_params], rtol=1e-5, atol=1e-9, err_msg=metric
        )
    for metric in ("grad_norm", "update_norm", "act_mean", "act_std"):
        np.testing.assert_array_equal(np.isnan(loaded.history(metric)[:, 1]), np.isnan(ref[metric][:, 1]), metric)
    # scalars: exact (float32 loss → float64 is exact), NaN where not given
    np.testing.assert_array_equal(loaded.history("loss"), ref["loss"])
    np.testing.assert_array_equal(loaded.history("acc"), ref["acc"])
    np.testing.assert_array_equal(loaded.history("tensor_metric"), ref["tensor_metric"])
    # one layer / one parameter tensor
    np.testing.assert_allclose(loaded.history("grad_norm", layer="mid"), ref["grad_norm"][:, 2], rtol=1e-5)

    # to_pandas: one row per (step, layer), run-level metrics repeated
    frame = loaded.to_pandas()
    assert len(frame) == steps * len(FORWARD)
    assert list(frame["layer"][: len(FORWARD)]) == FORWARD
    mid = frame[frame["layer"] == "mid"]
    np.testing.assert_array_equal(mid["step"].to_numpy(), np.arange(steps))
    np.testing.assert_allclose(mid["grad_norm"].to_numpy(), ref["grad_norm"][:, 2], rtol=1e-5)
    np.testing.assert_array_equal(mid["loss"].to_numpy(), ref["loss"])
    np.testing.assert_array_equal(frame[frame["layer"] == "act"]["acc"].to_numpy(), ref["acc"])

    with pytest.raises(KeyError, match="no_such_metric"):
        loaded.history("no_such_metric")
    with pytest.raises(ValueError, match="run-level"):
        loaded.history("loss", layer="mid")


def test_parameter_free_layer_has_no_weight_or_gradient_values(tmp_path):
    """DESIGN: per-layer metrics are NaN where they do not apply; a Tanh has no weights to measure."""
    model, opt = make_shuffled()
    with gd.watch(model, opt, log_dir=tmp_path) as run:
        train_shuffled(model, opt, run, 2)
    loaded = gd.load(tmp_path)
    act = loaded.layers.index("act")
    for metric in ("grad_norm", "grad_max", "grad_zero_frac", "nonfinite", "update_norm", "weight_norm"):
        assert np.isnan(loaded.history(metric)[:, act]).all(), f"{metric} of a parameter-free layer: {loaded.history(metric)[:, act]}"


def test_param_history_matches_torch(tmp_path):
    model, opt = make_shuffled()
    g = torch.Generator().manual_seed(3)
    expected = []
    with gd.watch(model, opt, log_dir=tmp_path):
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 3, generator=g)).pow(2).sum().backward()
            expected.append([model.mid.weight.grad.double().norm().item(), model.mid.bias.grad.double().norm().item()])
            opt.step()
    loaded = gd.load(tmp_path)
    assert sorted(loaded.params) == sorted(n for n, _ in model.named_parameters())
    got = np.stack([loaded.history("grad_norm", layer="mid.weight"), loaded.history("grad_norm", layer="mid.bias")], 1)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-5)


def test_metrics_without_optimizer_land_on_the_marked_step(tmp_path):
    model, _ = make_shuffled()
    g = torch.Generator().manual_seed(5)
    losses, grads = [], []
    with gd.watch(model, log_dir=tmp_path, flush_every=2) as run:
        for k in range(5):
            model.zero_grad()
            loss = model(torch.randn(4, 3, generator=g)).pow(2).mean()
            loss.backward()
            grads.append(math.sqrt(own_sq(model.head, "grad")))
            run.step(loss=loss, lr=0.5 ** k)  # the step itself, no optimizer
            losses.append(loss.item())
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    loaded = gd.load(tmp_path)
    np.testing.assert_array_equal(loaded.steps, np.arange(5))
    np.testing.assert_array_equal(loaded.history("loss"), losses)
    np.testing.assert_array_equal(loaded.history("lr"), 0.5 ** np.arange(5))
    np.testing.assert_allclose(loaded.history("grad_norm", layer="head"), grads, rtol=1e-5)
    assert np.isnan(loaded.history("update_norm")).all()  # no optimizer: updates are not measured


def test_in_memory_run_reads_after_close():
    model, opt = make_shuffled()
    with gd.watch(model, opt) as run:
        ref = train_shuffled(model, opt, run, 3, metrics=True)
    assert run.log_dir is None
    np.testing.assert_array_equal(run.history("loss"), ref["loss"])
    np.testing.assert_allclose(run.history("grad_norm"), ref["grad_norm"], rtol=1e-5)


# -- resume, existing and unwritable log_dir ----------------------------------------------------


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks and not m._backward_pre_hooks
        for m in model.modules()
    )


def test_resume_appends_with_continuing_steps(tmp_path):
    model, opt = make_shuffled()
    with gd.watch(model, opt, log_dir=tmp_path, update_every=2, activation_every=3) as run:
        first = train_shuffled(model, opt, run, 3, seed=1, update_every=2, activation_every=3)
    with gd.watch(model, opt, log_dir=tmp_path, resume=True, update_every=2, activation_every=3) as run:
        second = train_shuffled(model, opt, run, 4, seed=2, update_every=2, activation_every=3)
    loaded = gd.load(tmp_path)
    np.testing.assert_array_equal(loaded.steps, np.arange(7))
    assert loaded.layers == FORWARD
    np.testing.assert_array_equal(loaded.history("loss"), np.concatenate([first["loss"], second["loss"]]))
    np.testing.assert_allclose(
        loaded.history("grad_norm"), np.concatenate([first["grad_norm"], second["grad_norm"]]), rtol=1e-5
    )
    # cadences follow the global step number: updates at 0, 2, 4, 6
    measured = ~np.isnan(loaded.history("update_norm")[:, 0])
    np.testing.assert_array_equal(np.flatnonzero(measured), [0, 2, 4, 6])


def test_existing_log_dir_without_resume_is_refused_untouched(tmp_path):
    _tiny_record(tmp_path)
    before = _snapshot(tmp_path)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(gd.RecordError, match="resume=True to append to it, overwrite=True to start it over") as err:
        gd.watch(model, opt, log_dir=tmp_path)
    assert str(tmp_path) in str(err.value)
    assert _snapshot(tmp_path) == before
    assert _no_hooks(model) and not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
    np.testing.assert_array_equal(gd.load(tmp_path).steps, [0, 1])


def test_overwrite_starts_a_rerun_script_over_with_only_its_own_steps(tmp_path):
    _tiny_record(tmp_path, steps=5)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))  # another model: the old header must go too
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    with gd.watch(model, opt, log_dir=tmp_path, overwrite=True) as run:
        for _ in range(3):
            opt.zero_grad()
            loss = model(torch.randn(5, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            run.step(loss=loss)
            losses.append(loss.item())
    loaded = gd.load(tmp_path)
    np.testing.assert_array_equal(loaded.steps, [0, 1, 2])
    assert [info.kind for info in loaded.layer_details] == ["Linear", "Tanh", "Linear"]
    np.testing.assert_allclose(loaded.history("loss"), losses, rtol=1e-6)


def test_overwrite_and_resume_together_are_refused(tmp_path):
    _tiny_record(tmp_path)
    model = nn.Linear(3, 1)
    with pytest.raises(gd.InvalidValue, match="pass one of them"):
        gd.watch(model, log_dir=tmp_path, resume=True, overwrite=True)
    with pytest.raises(gd.InvalidType, match="overwrite must be True or False"):
        gd.watch(model, log_dir=tmp_path, overwrite="yes")
    np.testing.assert_array_equal(gd.load(tmp_path).steps, [0, 1])  # untouched


@pytest.mark.parametrize(
    "other",
    [
        lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)),
        lambda: nn.Sequential(nn.Linear(3, 9), nn.ReLU(), nn.Linear(9, 1)),  # same names, other shapes
    ],
    ids=["other-layers", "other-shapes"],
)
def test_resume_with_another_model_is_refused(tmp_path, other):
    _tiny_record(tmp_path)
    with sqlite3.connect(tmp_path / "run.db") as db:
        before = db.execute("SELECT step, entity, metric, data FROM series ORDER BY 1, 2, 3").fetchall()
    db.close()
    model = other()
    with pytest.raises(gd.RecordError, match="cannot resume") as err:
        gd.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), log_dir=tmp_path, resume=True)
    assert str(tmp_path / "run.db") in str(err.value)
    assert _no_hooks(model)
    with sqlite3.connect(tmp_path / "run.db") as db:
        after = db.execute("SELECT step, entity, metric, data FROM series ORDER BY 1, 2, 3").fetchall()
    db.close()
    assert after == before
    np.testing.assert_array_equal(gd.load(tmp_path).steps, [0, 1])


def test_unwritable_log_dir_fails_at_watch_time(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    model = nn.Linear(3, 2)
    for log_dir in (blocker / "run", blocker):
        with pytest.raises(gd.RecordError, match="cannot write a run record") as err:
            gd.watch(model, log_dir=log_dir)
        assert str(log_dir) in str(err.value)
        assert _no_hooks(model)
    assert blocker.read_text() == "not a directory"


def test_a_failed_flush_keeps_its_steps_for_close(tmp_path, monkeypatch):
    """A write that fails mid-training warns once, and the steps it held are written at close()."""
    from gradient_doctor.record.store import RunStore

    real = RunStore.write_flush
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise sqlite3.OperationalError("disk I/O error (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "write_flush", flaky)
    model, opt = make_shuffled()
    with pytest.warns(RuntimeWarning, match="could not write the run record") as record:
        with gd.watch(model, opt, log_dir=tmp_path, flush_every=2) as run:
            ref = train_shuffled(model, opt, run, 6)
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    loaded = gd.load(tmp_path)
    np.testing.assert_array_equal(loaded.steps, np.arange(6))
    np.testing.assert_array_equal(loaded.history("loss"), ref["loss"])
    np.testing.assert_allclose(loaded.history("grad_norm")[:, [0, 2, 3]], ref["grad_norm"][:, [0, 2, 3]], rtol=1e-5)


def test_history_since_reads_only_the_later_steps(tmp_path):
    model, opt = make_shuffled()
    with gd.watch(model, opt, log_dir=tmp_path, detail_every=2, update_every=3, activation_every=2, flush_every=3) as run:
        train_shuffled(model, opt, run, 9)
    loaded = gd.load(tmp_path)
    later = loaded.steps >= 5
    for metric in loaded.metrics:
        np.testing.assert_array_equal(loaded.history(metric, since=5), loaded.history(metric)[later], err_msg=metric)
    np.testing.assert_array_equal(loaded.history("grad_norm", layer="head", since=5),
                                  loaded.history("grad_norm", layer="head")[later])
    np.testing.assert_array_equal(loaded.history("update_norm", layer="head.weight", since=7),
                                  loaded.history("update_norm", layer="head.weight")[loaded.steps >= 7])
    assert loaded.history("loss", since=100).shape == (0,)
