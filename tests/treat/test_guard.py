"""The in-loop guard (gd.watch(..., guard=True)) against plain-torch loops that do by hand what it should do."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import InvalidType, InvalidValue


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return x, (x[:, 0] > 0).long()


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))


def _batch(x, y, step, size=32):
    i = (step * size) % len(x)
    return x[i:i + size].clone(), y[i:i + size]


def test_a_nan_batch_is_skipped_leaving_weights_and_optimizer_state_as_without_that_step():
    x, y = _data()
    bad = 7
    guarded, plain = _model(), _model()
    opt_g = torch.optim.Adam(guarded.parameters(), lr=1e-2)
    opt_p = torch.optim.Adam(plain.parameters(), lr=1e-2)
    with gd.watch(guarded, opt_g, guard=True) as run:
        for step in range(20):
            xb, yb = _batch(x, y, step)
            if step == bad:
                xb[0, 0] = float("nan")
            opt_g.zero_grad()
            loss = nn.functional.cross_entropy(guarded(xb), yb)
            loss.backward()
            opt_g.step()
            run.step(loss=loss)
    for step in range(20):  # plain torch: the bad step simply not taken
        if step == bad:
            continue
        opt_p.zero_grad()
        nn.functional.cross_entropy(plain(_batch(x, y, step)[0]), _batch(x, y, step)[1]).backward()
        opt_p.step()
    for a, b in zip(guarded.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b)
    assert opt_g.state[next(guarded.parameters())]["step"] == opt_p.state[next(plain.parameters())]["step"] == 19
    kinds = [(i.step, i.kind) for i in run.interventions]
    assert kinds == [(bad, "skipped_update")]
    assert run.interventions[0].detail["nonfinite"] > 0


def test_a_gradient_spike_is_clipped_to_the_running_level_computed_by_hand():
    x, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    guard = gd.Guard(warmup=20, ema=0.9, spike_z=4.0, spike_ratio=2.0, rollback=False)
    mean = var = 0.0
    seen = 0
    with gd.watch(model, opt, guard=guard) as run:
        for step in range(40):
            xb, yb = _batch(x, y, step)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb) * (50.0 if step == 30 else 1.0)
            loss.backward()
            norm = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
            expected = None
            if seen >= 20 and norm > mean + 4 * math.sqrt(var) and norm > 2 * mean:
                expected = mean + 4 * math.sqrt(var)
            opt.step()
            if expected is not None:  # what the guard must have applied: the gradient scaled to the level
                clipped = float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])))
                assert clipped == pytest.approx(expected, rel=1e-6)
                norm = expected
            seen += 1
            alpha = max(0.9, 1 - 1 / seen)
            delta = norm - mean
            mean += (1 - alpha) * delta
            var = alpha * (var + (1 - alpha) * delta * delta)
            run.step(loss=loss)
    assert [(i.step, i.kind) for i in run.interventions] == [(30, "clipped_spike")]


def test_a_diverging_loss_rolls_back_to_the_kept_state_with_a_lower_learning_rate():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = x.sum(1, keepdim=True)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    guard = gd.Guard(spike_z=0, check_every=10, patience=3, keep_every=50, lr_factor=0.5)
    after = []  # the parameters after each iteration (optimizer step, then run.step)
    with gd.watch(model, opt, guard=guard) as run:
        for step in range(200):
            if step == 100:
                opt.param_groups[0]["lr"] = 1.0  # diverges
            xb, yb = x[(step * 32) % 256:][:32], y[(step * 32) % 256:][:32]
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            opt.step()
            run.step(loss=loss)
            after.append([p.detach().clone() for p in model.parameters()])
    rolled = [i for i in run.interventions if i.kind == "rolled_back"]
    assert rolled, run.interventions
    first = rolled[0]
    # kept at a good check (every 10 steps, at least 50 apart: 10, 60, ...), before the lr went up at step 100
    assert first.detail["to_step"] in (10, 60) and first.step >= 100 + 3 * 10 - 1
    assert first.detail["lr"] == 0.5 and opt.param_groups[0]["lr"] <= 0.5
    for now, then in zip(after[first.step], after[first.detail["to_step"] - 1]):
        torch.testing.assert_close(now, then)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert float(loss.detach()) < 1.0


def test_a_healthy_run_gets_no_intervention_and_bit_identical_weights():
    x, y = _data()
    guarded, plain = _model(), _model()
    opt_g = torch.optim.SGD(guarded.parameters(), lr=0.1, momentum=0.9)
    opt_p = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    with gd.watch(guarded, opt_g, guard=True) as run:
        for step in range(300):
            for model, opt in ((guarded, opt_g), (plain, opt_p)):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(_batch(x, y, step)[0]), _batch(x, y, step)[1])
                loss.backward()
                opt.step()
            run.step(loss=loss)
    assert run.interventions == []
    for a, b in zip(guarded.parameters(), plain.parameters()):
        assert torch.equal(a, b)


def _poisoned_run(steps: int, poisoned: int, value: float, **watch_options) -> None:
    """A guarded run of `steps` SGD steps whose batch at step `poisoned` is all `value` (inf or NaN)."""
    x, y = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, guard=True, **watch_options) as run:
        for step in range(steps):
            xb, yb = _batch(x, y, step)
            if step == poisoned:
                xb[:] = value
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            run.step()


def test_interventions_are_in_the_record_on_disk(tmp_path):
    _poisoned_run(5, 3, float("inf"), log_dir=tmp_path / "a")
    loaded = gd.load(tmp_path / "a").interventions
    assert [(i.step, i.kind) for i in loaded] == [(3, "skipped_update")]
    assert "skipped update" in str(loaded[0])


def test_bad_guard_options_are_clear_errors():
    model = _model()
    with pytest.raises(InvalidValue, match="needs the optimizer"):
        gd.watch(model, guard=True)
    with pytest.raises(InvalidType, match="guard must be"):
        gd.watch(model, torch.optim.SGD(model.parameters(), lr=0.1), guard="yes")
    with pytest.raises(InvalidValue, match="spike_z"):
        gd.Guard(spike_z=-1)
    with pytest.raises(InvalidValue, match="lr_factor"):
        gd.Guard(lr_factor=1.0)
    with pytest.raises(InvalidValue, match="check_every"):
        gd.Guard(check_every=0)


def test_show_the_html_report_and_tensorboard_tell_each_action(tmp_path, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gradient_doctor.cli.main import main

    _poisoned_run(6, 4, float("nan"), log_dir=tmp_path / "a", tensorboard=tmp_path / "tb")
    assert main(["show", str(tmp_path / "a")]) in (0, 1)
    assert "step 4: skipped update" in capsys.readouterr().out
    page = gd.report(tmp_path / "a", tmp_path / "a.html").read_text()
    assert 'data-table="interventions"' in page and "skipped update" in page
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("guard/skipped_update")] == [(4, 1.0)]
