"""run.diagnose() on tiny models trained for real (CPU, a few hundred steps at most), each scenario checked against a
plain-torch replay of the same training: same seed, same batches, no gradient-doctor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd

IN, WIDTH, BATCH = 16, 32, 32


def data(seed: int = 0, n: int = 512, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs N(0, 1) × scale and targets from a fixed random teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN, generator=g)
    teacher = torch.randn(IN, 1, generator=g) / math.sqrt(IN)
    return x * scale, torch.tanh(x @ teacher) + 0.1 * torch.randn(n, 1, generator=g)


def batches(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    picks = [torch.randint(0, len(x), (BATCH,), generator=g) for _ in range(steps)]
    return [(x[p], y[p]) for p in picks]


def mlp(depth: int, activation: type[nn.Module], seed: int = 0, he: bool = False,
        bias: float | None = None) -> nn.Sequential:
    torch.manual_seed(seed)
    sizes = [IN] + [WIDTH] * (depth - 1) + [1]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        linear = nn.Linear(a, b)
        if he:
            nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        if bias is not None and i < depth - 1:
            nn.init.constant_(linear.bias, bias)
        layers.append(linear)
        if i < depth - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def train(model, optimizer, steps, *, log_dir=None, x_scale=1.0, lr=None, inside=None) -> gd.Run:
    """Train with every metric recorded on every step; `lr(step)` sets the learning rate of each step; `inside(run)`
    is called before the run closes."""
    x, y = data(scale=x_scale)
    with gd.watch(model, optimizer, log_dir=log_dir, detail_every=1, update_every=1, activation_every=1) as run:
        for t, (xb, yb) in enumerate(batches(x, y, steps)):
            set_lr(optimizer, lr, t)
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            optimizer.step()
            run.step(loss=loss)
        if inside is not None:
            inside(run)
    return run


def set_lr(optimizer, lr, step: int) -> None:
    if lr is not None:
        for group in optimizer.param_groups:
            group["lr"] = lr(step)


def replay(model, optimizer, steps, *, x_scale=1.0, lr=None) -> dict[str, np.ndarray]:
    """The same training in plain torch: per step the loss and, per module of the Sequential, the gradient norm and
    update norm (weight and bias jointly), the weight norm after the step, and activation outputs' saturated and
    dead fractions. Steps × modules, NaN where a quantity does not apply."""
    x, y = data(scale=x_scale)
    modules = list(model)
    out = {k: np.full((steps, len(modules)), np.nan) for k in ("grad", "update", "weight", "saturated", "dead")}
    out["loss"] = np.full(steps, np.nan)
    for t, (xb, yb) in enumerate(batches(x, y, steps)):
        set_lr(optimizer, lr, t)
        optimizer.zero_grad()
        h = xb
        for j, module in enumerate(modules):
            h = module(h)
            if isinstance(module, nn.Sigmoid):
                out["saturated"][t, j] = ((h <= 0.01) | (h >= 0.99)).double().mean().item()
            if isinstance(module, nn.ReLU):
                out["dead"][t, j] = (h.abs().amax(dim=0) == 0).double().mean().item()
        loss = nn.functional.mse_loss(h, yb)
        loss.backward()
        before = [torch.cat([p.detach().flatten() for p in m.parameters()]).clone() if list(m.parameters()) else None
                  for m in modules]
        optimizer.step()
        out["loss"][t] = loss.item()
        for j, module in enumerate(modules):
            params = list(module.parameters())
            grads = [p.grad.flatten() for p in params if p.grad is not None]
            if grads:
                out["grad"][t, j] = torch.cat(grads).double().norm().item()
            if before[j] is not None:
                after = torch.cat([p.detach().flatten() for p in params])
                out["weight"][t, j] = after.double().norm().item()
                out["update"][t, j] = (after - before[j]).double().norm().item()
    return out


def kinds(diag: gd.Diagnosis, *severities: str) -> set[str]:
    return {f.kind for f in diag.findings if not severities or f.severity in severities}


def finding(diag: gd.Diagnosis, kind: str) -> gd.Finding:
    found = [f for f in diag.findings if f.kind == kind]
    assert found, f"no {kind} finding in {[(f.kind, f.severity) for f in diag.findings]}"
    return found[0]


# -- vanishing -------------------------------------------------------------------------------------------------------

def test_sigmoid_mlp_with_sgd_vanishes_in_its_lowest_layers():
    model = mlp(10, nn.Sigmoid)
    run = train(model, torch.optim.SGD(model.parameters(), lr=0.1), 120)
    f = finding(run.diagnose(), "vanishing_gradient")
    assert f.severity == "critical" and f.scope == "depth"
    assert f.layers[:3] == ["0", "2", "4"]
    assert f.evidence["upper_layers"] == ["10", "12", "14", "16", "18"]  # the reference: the upper half
    assert f.remedies[0] == "swap_activation:relu"

    ref = mlp(10, nn.Sigmoid)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1), 120)
    linear = [j for j, m in enumerate(ref) if isinstance(m, nn.Linear)]
    numel = np.array([sum(p.numel() for p in ref[j].parameters()) for j in linear])
    rms = np.median(r["grad"][:, linear], axis=0) / np.sqrt(numel)
    relative = np.median(r["update"][:, linear] / r["weight"][:, linear], axis=0)
    upper = slice(len(linear) // 2, None)
    grad_ratio, update_ratio = rms / np.median(rms[upper]), relative / np.median(relative[upper])
    lower = [str(j) for k, j in enumerate(linear[: len(linear) // 2])
             if grad_ratio[k] < math.exp(-3) and update_ratio[k] < math.exp(-3)]
    assert f.layers == lower
    for k, j in enumerate(linear[: len(lower)]):
        assert f.evidence["grad_ratio"][str(j)] == pytest.approx(grad_ratio[k], rel=1e-3)
        assert f.evidence["update_ratio"][str(j)] == pytest.approx(update_ratio[k], rel=1e-3)


@pytest.mark.parametrize("how", ["requires_grad", "optimizer"])
def test_frozen_lower_layers_are_not_vanishing(how):
    """Eight frozen sigmoid layers under a trainable ReLU head: the frozen ones would look vanishing if judged."""
    torch.manual_seed(0)
    model = nn.Sequential(*mlp(9, nn.Sigmoid)[:-1], nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))
    for layer in (model[-3], model[-1]):
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    frozen = list(model[:-3].parameters())
    if how == "requires_grad":
        for p in frozen:
            p.requires_grad_(False)
    head = list(model[-3:].parameters())
    diag = train(model, torch.optim.SGD(head, lr=0.05), 60).diagnose()
    assert "vanishing_gradient" not in kinds(diag), diag

    # the control: the same network, every layer trained, does vanish
    torch.manual_seed(0)
    control = nn.Sequential(*mlp(9, nn.Sigmoid)[:-1], nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, 1))
    assert "vanishing_gradient" in kinds(train(control, torch.optim.SGD(control.parameters(), lr=0.05), 60).diagnose())


# -- healthy, plateau --------------------------------------------------------------------------------------------------

def test_relu_he_mlp_with_adam_is_healthy():
    model = mlp(4, nn.ReLU, he=True)
    diag = train(model, torch.optim.Adam(model.parameters(), lr=1e-3), 200).diagnose()
    assert diag.healthy, [(f.kind, f.severity, f.summary) for f in diag.findings]


def test_tiny_learning_rate_is_a_plateau_not_vanishing():
    model = mlp(4, nn.ReLU, he=True)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=1e-7), 150).diagnose()
    assert "vanishing_gradient" not in kinds(diag)
    f = finding(diag, "loss_plateau")
    assert f.severity == "warning" and f.remedies[0] == "increase_lr"

    ref = mlp(4, nn.ReLU, he=True)
    loss = replay(ref, torch.optim.SGD(ref.parameters(), lr=1e-7), 150)["loss"]
    steps = np.arange(len(loss), dtype=float)
    i, j = np.triu_indices(len(loss), k=1)
    slope = np.median((loss[j] - loss[i]) / (steps[j] - steps[i]))
    residuals = loss - np.median(loss - slope * steps) - slope * steps
    assert f.evidence["drift"] == pytest.approx(slope * (len(loss) - 1), rel=1e-3, abs=1e-12)
    assert f.evidence["noise"] == pytest.approx(1.4826 * np.median(np.abs(residuals - np.median(residuals))), rel=1e-3)
    assert f.evidence["weight_movement"] < 0.01


# -- divergence, dead units, saturation ---------------------------------------------------------------------------

def test_diverging_relu_mlp_is_located_at_the_step_a_replay_finds():
    """30 steps at lr 0.01 (the baseline), then lr 0.3: the gradients grow for a few steps, then turn inf/NaN."""
    def lr(step):
        return 0.01 if step < 30 else 0.3

    model = mlp(4, nn.ReLU, he=True)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 60, lr=lr).diagnose()
    ref = mlp(4, nn.ReLU, he=True)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.01), 60, lr=lr)
    linear = [0, 2, 4, 6]
    grad = r["grad"][:, linear]
    bad = ~np.isfinite(r["loss"]) | ~np.isfinite(grad).any(axis=1) | ~np.isfinite(r["weight"][:, linear]).any(axis=1)
    assert bad.any(), "the replay did not diverge: raise the learning rate"
    f = finding(diag, "non_finite")
    step = int(np.argmax(bad))
    assert f.severity == "critical" and f.evidence["first_step"] == step
    assert f.evidence["first_layer_in"] == "gradients"  # the loss has no layer; the activations turn later
    assert f.layers == [str(linear[int(np.argmax(~np.isfinite(grad[step])))])]

    explosion = finding(diag, "exploding_gradient")
    finite = np.isfinite(grad).all(axis=1)
    early = np.log10(grad[finite][: max(5, int(finite.sum()) // 4)])  # the baseline: the first quarter
    above = (np.log10(np.where(finite[:, None], grad, np.inf)) - np.median(early, axis=0)) > 3 / math.log(10)
    assert explosion.severity == "critical" and explosion.evidence["first_step"] == int(np.argmax(above.any(axis=1)))
    assert 30 < explosion.evidence["first_step"] < f.evidence["first_step"]


def test_negative_biases_kill_relu_units():
    model = mlp(4, nn.ReLU, bias=-5.0)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 40).diagnose()
    f = finding(diag, "dead_units")
    assert f.severity == "critical" and f.layers[0] == "1"
    ref = mlp(4, nn.ReLU, bias=-5.0)
    dead = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.01), 40)["dead"]
    for name, value in f.evidence["dead_frac_min"].items():
        assert value == pytest.approx(dead[:, int(name)].min(), rel=1e-3)


def test_inputs_on_a_huge_scale_saturate_the_first_sigmoid_layer():
    model = mlp(3, nn.Sigmoid)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 40, x_scale=100.0).diagnose()
    f = finding(diag, "saturated_activation")
    assert f.layers == ["1"] and f.remedies[0] == "normalize_inputs" and f.evidence["inputs_likely"] is True
    ref = mlp(3, nn.Sigmoid)
    saturated = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.01), 40, x_scale=100.0)["saturated"]
    assert f.evidence["saturated_frac"]["1"] == pytest.approx(np.median(saturated[:, 1]), rel=1e-3)


def test_strong_weight_decay_collapses_the_weights():
    model = mlp(3, nn.ReLU, he=True)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=2.0), 60).diagnose()
    f = finding(diag, "weights_collapsing")
    assert f.remedies[0] == "decrease_weight_decay" and "0" in f.layers
    ref = mlp(3, nn.ReLU, he=True)
    weight = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1, weight_decay=2.0), 60)["weight"][:, 0]
    quarter = len(weight) // 4
    expected = np.median(weight[-quarter:]) / np.median(weight[:quarter])
    assert f.evidence["ratio"]["0"] == pytest.approx(expected, rel=1e-3)


# -- the record alone ------------------------------------------------------------------------------------------------

def test_a_saved_run_diagnoses_like_the_live_one(tmp_path):
    live = {}
    model = mlp(10, nn.Sigmoid)
    train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60, log_dir=tmp_path / "a",
          inside=lambda run: live.update(all=run.diagnose().to_dict(), last=run.diagnose(window=30).to_dict()))
    assert live["all"]["findings"], "the scenario should have findings to compare"
    assert gd.diagnose(tmp_path / "a").to_dict() == live["all"]
    assert gd.load(tmp_path / "a").diagnose(window=30).to_dict() == live["last"]
    assert gd.diagnose(str(tmp_path / "a"), window=30).to_dict() == live["last"]
    vanishing = [f for f in live["last"]["findings"] if f["kind"] == "vanishing_gradient"]
    assert vanishing and vanishing[0]["evidence"]["steps"] == 30  # the last 30 of 60 steps


def test_diagnose_rejects_what_is_not_a_run(tmp_path):
    with pytest.raises(TypeError, match="expects a Run .* got int"):
        gd.diagnose(42)
    with pytest.raises(gd.RecordError, match="no gradient-doctor run record"):
        gd.diagnose(tmp_path / "missing")
    model = mlp(2, nn.ReLU)
    run = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 3)
    with pytest.raises(ValueError, match="window must be a positive number of steps or None, got 0"):
        run.diagnose(window=0)


def test_cli_show_prints_the_summary_and_the_diagnosis(tmp_path, capsys):
    from gradient_doctor.cli import main

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=tmp_path / "run") as run:
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(torch.randn(16, 4)), torch.randint(0, 2, (16,)))
            loss.backward()
            opt.step()
            run.step(loss=loss)
    assert main(["show", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "5 steps" in out and "healthy" in out
    assert main(["show", str(tmp_path / "nothing-here")]) == 2


class AddingRNN(nn.Module):
    """A recurrent net reading the adding problem's two channels, predicting from its last step."""

    def __init__(self, kind=nn.RNN, hidden=16):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = kind(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def adding_batch(g: torch.Generator, n: int = 16, steps: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Hochreiter & Schmidhuber 1997): the target is the sum of the two marked values."""
    values = torch.rand(n, steps, generator=g)
    marks = torch.zeros(n, steps)
    for row in range(n):
        first, second = torch.randperm(steps // 2, generator=g)[0], steps // 2 + torch.randperm(steps // 2, generator=g)[0]
        marks[row, first] = marks[row, second] = 1.0
    return torch.stack([values, marks], dim=2), (values * marks).sum(dim=1, keepdim=True)


@pytest.mark.parametrize("kind", [nn.RNN, nn.LSTM])
def test_recurrent_net_on_the_adding_problem_vanishes_through_time(kind):
    model = AddingRNN(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(3)
    with torch.backends.mkldnn.flags(enabled=False):  # oneDNN's CPU LSTM is ~40x slower in this torch build
        with gd.watch(model, opt, activation_every=5) as run:
            for _ in range(30):
                x, y = adding_batch(g)
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                run.step(loss=loss)
    timewise = [f for f in run.diagnose().findings if f.scope == "time"]
    assert [(f.kind, f.layers) for f in timewise] == [("vanishing_gradient", ["rnn"])]
    assert timewise[0].severity == "critical" and timewise[0].remedies[0] == ("to_lstm" if kind is nn.RNN else "forget_gate_bias")
    ratios = run.history("time_ratio", layer="rnn")
    assert np.isfinite(ratios).sum() == 6  # steps 0, 5, ..., 25
    assert timewise[0].evidence["time_ratio_median"] == pytest.approx(float(np.nanmedian(ratios)), rel=1e-3)


def test_fp16_autocast_with_grad_scaler_on_a_healthy_net_is_healthy():
    """The scaler's start-up skips are recorded, reach no rule, and make no finding."""
    model = mlp(4, nn.ReLU, he=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu")  # starts at 2^16: the first iterations overflow in float16
    x, y = data()
    iterations = 150
    with pytest.warns(RuntimeWarning, match="skipped step"):
        with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
            for xb, yb in batches(x, y, iterations):
                opt.zero_grad()
                with torch.autocast("cpu", dtype=torch.float16):
                    loss = nn.functional.mse_loss(model(xb).float(), yb)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                run.step(loss=loss)
    skipped = np.nansum(run.history("skipped"))
    assert skipped >= 1 and len(run.steps) + skipped == iterations
    assert scaler.get_scale() == 2.0 ** 16 / 2 ** skipped  # each skip halved the scale
    diag = run.diagnose()
    assert diag.healthy and not kinds(diag) & {"exploding_gradient", "non_finite"}


def test_a_layer_whose_steps_round_to_zero_is_vanishing_not_frozen():
    """The most-vanished layers of a deep sigmoid MLP get gradients so small that SGD's float32 steps round to
    nothing: they are the heart of the vanishing finding, not frozen layers left out of it."""
    model = mlp(16, nn.Sigmoid)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.1), 40).diagnose()
    ref = mlp(16, nn.Sigmoid)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1), 40)
    never_moved = [str(j) for j in range(len(ref)) if isinstance(ref[j], nn.Linear) and not (r["update"][:, j] > 0).any()]
    assert never_moved[0] == "0" and all(np.all(r["grad"][:, int(j)] > 0) for j in never_moved)  # plain torch
    f = finding(diag, "vanishing_gradient")
    assert set(never_moved) <= set(f.layers) and f.layers[0] == "0"
    assert not f.evidence["frozen"]
    assert "layer 0" in f.summary and "does not move at all" in f.summary


def test_a_layer_with_learning_rate_zero_is_still_frozen():
    """Zero updates with a gradient as large as a moving layer's are a learning rate of 0: frozen, left out."""
    model = mlp(4, nn.ReLU, he=True)
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                                 {"params": [p for m in list(model)[1:] for p in m.parameters()], "lr": 0.01}])
    run = train(model, optimizer, 30)
    from gradient_doctor.record.history import read_history

    assert "0" not in [run.layers[i] for i in read_history(run, None).trainable()]
