"""gd.autotrain against plain-torch loops: a healthy model is trained bit for bit as plain PyTorch would; a broken
one is treated, restarted or adjusted, and each step of that can be redone by hand; bad input fails before any
training."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import InvalidType, InvalidValue


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4].sum(1) > 0).long()
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, n, 32)]


def _mlp(depth=2, activation=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    layers, width = [], 16
    for _ in range(depth):
        layers += [nn.Linear(width, 32), activation()]
        width = 32
    return nn.Sequential(*layers, nn.Linear(width, 2))


def _plain(model, optimizer, batches, steps):
    cycle = (b for _ in range(steps) for b in batches)
    for _ in range(steps):
        x, y = next(cycle)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def test_a_healthy_model_is_trained_bit_for_bit_as_plain_pytorch():
    batches = _data()
    model, twin = _mlp(), _mlp()
    result = gd.autotrain(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches,
                          nn.functional.cross_entropy, steps=120)
    _plain(twin, torch.optim.Adam(twin.parameters(), lr=1e-3), batches, 120)
    assert result.model is model and result.healthy
    assert [r.action for r in result.rounds] == ["go_on", "go_on"] and result.rounds[1].steps == 120
    assert result.interventions == []
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert "0 restart(s)" in str(result) and "round 0, checkup at init: healthy" in str(result)


def test_a_vanishing_sigmoid_stack_is_treated_at_init_and_trained_like_the_treated_model_by_hand():
    batches = _data()
    model = _mlp(depth=14, activation=nn.Sigmoid)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    untouched = copy.deepcopy(model)
    result = gd.autotrain(model, optimizer, batches, nn.functional.cross_entropy, steps=60)
    first = result.rounds[0]
    assert first.action == "treat" and any(k.startswith("vanishing_gradient") for k in first.findings)
    assert first.applied, first
    # redo it by hand: the same treatment of the same model on the same batch, then a plain loop
    treatment = gd.treat(untouched, gd.checkup(untouched, *batches[0], nn.functional.cross_entropy),
                         *batches[0], nn.functional.cross_entropy)
    assert treatment.applied == first.applied
    hand = treatment.model
    if len(result.rounds) == 2 and not result.interventions:
        _plain(hand, torch.optim.SGD(hand.parameters(), lr=0.1 * first.lr_factor), batches, 60)
        for a, b in zip(result.model.parameters(), hand.parameters()):
            torch.testing.assert_close(a, b)
    # the treated model trains where the untreated one does not move
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    with torch.no_grad():
        assert nn.functional.cross_entropy(result.model(x), y) < nn.functional.cross_entropy(untouched(x), y) - 0.05


class _Scaled(nn.Module):
    """A sigmoid stack behind an input scale of its own: a parameter at the root, as in many hand-written models."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(16))
        self.body = _mlp(depth=14, activation=nn.Sigmoid)

    def forward(self, x):
        return self.body(x * self.scale)


def test_a_model_with_parameters_at_its_root_is_treated_at_init_as_by_hand():
    batches = _data()
    model = _Scaled()
    untouched = copy.deepcopy(model)
    result = gd.autotrain(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, nn.functional.cross_entropy,
                          steps=30)
    loss_fn = nn.functional.cross_entropy
    by_hand = gd.treat(untouched, gd.checkup(untouched, *batches[0], loss_fn), *batches[0], loss_fn)
    assert result.rounds[0].action == "treat" and result.rounds[0].applied == by_hand.applied != []


def test_a_plateau_raises_the_learning_rate_in_place_like_plain_adam_told_at_the_check():
    """A learning rate far too small leaves the weights where they started: raising it in place loses nothing that a
    restart would win back, and spends no steps again. Redone by hand: plain Adam at 1e-7 for 30 steps, then at the
    measured rate."""
    batches = _data()
    model = _mlp()
    hand = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-7)
    result = gd.autotrain(model, optimizer, batches, nn.functional.cross_entropy, steps=90)
    scaled = [i for i in result.interventions if i.kind == "lr_scaled"]
    assert [i.step for i in scaled] == [29] and scaled[0].detail["factor"] > 1
    assert result.optimizer is optimizer and result.model is model
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-7 * scaled[0].detail["factor"])
    assert [r.action for r in result.rounds] == ["go_on", "go_on"] and result.rounds[1].steps == 90  # no restart
    assert result.rounds[1].findings == ["loss_plateau (warning)"]
    assert f"round 1: lr scaled at step 29 (factor {scaled[0].detail['factor']:.3g}" in str(result)  # no "x1"
    twin = torch.optim.Adam(hand.parameters(), lr=1e-7)
    cycle = (b for _ in range(90) for b in batches)
    for step in range(90):
        if step == 30:
            twin.param_groups[0]["lr"] = 1e-7 * scaled[0].detail["factor"]
        x, y = next(cycle)
        twin.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(hand(x), y).backward()
        twin.step()
    for a, b in zip(result.model.parameters(), hand.parameters()):
        torch.testing.assert_close(a, b)


def test_nan_batches_are_skipped_and_training_stays_finite():
    batches = _data()
    poisoned = [(x.clone(), y) for x, y in batches]
    poisoned[3][0][0, 0] = float("nan")
    model = _mlp()
    result = gd.autotrain(model, torch.optim.SGD(model.parameters(), lr=0.1), poisoned,
                          nn.functional.cross_entropy, steps=40)
    skipped = [i.step for i in result.interventions if i.kind == "skipped_update"]
    assert skipped[:5] == [3, 11, 19, 27, 35]  # the poisoned batch, once per 8-batch epoch
    assert f"skipped update {len(skipped)} times at steps 3, 11, 19, 27, 35" in str(result)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert not result.healthy  # updates of the last round were skipped: not a healthy run, whatever the rules say


def test_step_fn_trains_models_whose_loss_is_their_own():
    batches = _data()

    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def forward(self, x, y):
            return nn.functional.cross_entropy(self.net(x), y)

    model, twin = WithLoss(), WithLoss()
    result = gd.autotrain(model, torch.optim.SGD(model.parameters(), lr=0.05), batches, None, steps=50,
                          step_fn=lambda m, batch: m(*batch))
    optimizer = torch.optim.SGD(twin.parameters(), lr=0.05)
    cycle = (b for _ in range(50) for b in batches)
    for _ in range(50):
        optimizer.zero_grad(set_to_none=True)
        twin(*next(cycle)).backward()
        optimizer.step()
    assert result.healthy
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_each_round_is_recorded_under_log_dir_and_the_result_has_a_report(tmp_path):
    batches = _data()
    model = _mlp()
    result = gd.autotrain(model, torch.optim.SGD(model.parameters(), lr=0.1), batches,
                          nn.functional.cross_entropy, steps=40, log_dir=tmp_path / "auto")
    assert gd.load(tmp_path / "auto" / "round-1").steps[-1] == 39
    page = gd.report(result, tmp_path / "auto.html").read_text()
    assert "Rounds" in page and "round 0, checkup at init" in page


def test_bad_input_is_refused_before_any_training():
    model = _mlp()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy
    with pytest.raises(InvalidValue, match="no batch"):
        gd.autotrain(model, opt, [], loss, steps=10)
    with pytest.raises(InvalidValue, match="pair"):
        gd.autotrain(model, opt, [torch.randn(4, 16)], loss, steps=10)
    with pytest.raises(InvalidType, match="re-iterable"):
        gd.autotrain(model, opt, iter(_data()), loss, steps=10)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(InvalidValue, match="steps must be an integer >= 1"):
            gd.autotrain(model, opt, _data(), loss, steps=steps)
    with pytest.raises(InvalidValue, match="scalar"):
        gd.autotrain(model, opt, _data(), None, steps=10, step_fn=lambda m, b: m(b[0]))
    with pytest.raises(InvalidValue, match="holds none of the model's parameters"):
        gd.autotrain(model, torch.optim.SGD(_mlp(seed=1).parameters(), lr=0.1), _data(), loss, steps=10)
    with pytest.raises(InvalidType, match="loss_fn"):
        gd.autotrain(model, opt, _data(), None, steps=10)
    for a, b in zip(model.parameters(), before):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in model.parameters())


def test_the_policy_sizes_learning_rate_advice_and_restarts_only_early_for_structural_findings():
    from gradient_doctor.autotrain.policy import DoctorPolicy, lr_advice

    plateau = gd.Finding("loss_plateau", "warning", "run", [], {"lr_factor": 300.0}, ["increase_lr"])
    overshoot = gd.Finding("large_updates", "critical", "run", ["0"], {}, ["decrease_lr", "clip_grad_norm"])
    vanishing = gd.Finding("vanishing_gradient", "critical", "depth", ["0"], {}, ["he_init"])
    assert lr_advice([plateau]) == ("increase_lr", 300.0)
    assert lr_advice([overshoot, plateau]) == ("decrease_lr", 0.1)
    assert lr_advice([vanishing]) == (None, 1.0)
    policy = DoctorPolicy()
    raised = policy.at_check(gd.Diagnosis([plateau]), step=30, steps=300, restarts_left=3)
    assert (raised.action, raised.lr_factor) == ("adjust", 300.0)  # in place: the weights have not moved yet
    early = policy.at_check(gd.Diagnosis([vanishing]), step=30, steps=300, restarts_left=1)
    assert early.action == "restart"
    assert policy.at_check(gd.Diagnosis([vanishing]), step=180, steps=300, restarts_left=1).action == "go_on"
    assert policy.at_check(gd.Diagnosis([vanishing]), step=30, steps=300, restarts_left=0).action == "go_on"
    adjust = policy.at_check(gd.Diagnosis([overshoot]), step=30, steps=300, restarts_left=3)
    assert (adjust.action, adjust.lr_factor, adjust.clipping) == ("adjust", 0.1, ["clip_grad_norm"])
    dead = gd.Finding("dead_units", "critical", "run", ["1"], {}, ["he_init"])
    fallback = policy.unremedied(policy.at_check(gd.Diagnosis([dead]), step=30, steps=300, restarts_left=1))
    assert (fallback.action, fallback.lr_factor) == ("restart", 0.1)
    assert policy.unremedied(early).action == "go_on"


def test_a_learning_rate_far_too_large_restarts_early_from_the_initial_weights():
    """A flat loss while the weights moved 200x their norm (SGD far too fast), or a diverging loss, restarts at lr/10
    from the initial weights before half the budget; with 0.03 of their norm (a healthy net early in training) the
    plateau's decrease_lr is not followed."""
    from gradient_doctor.autotrain.policy import OVERSHOOT_MOVEMENT, DoctorPolicy, lr_advice

    def plateau(movement: float) -> gd.Finding:
        return gd.Finding("loss_plateau", "warning", "run", [], {"weight_movement": movement},
                          ["decrease_lr", "insert_norm:batch"])

    assert lr_advice([plateau(200.0)]) == ("decrease_lr", 0.1)
    assert lr_advice([plateau(0.03)]) == (None, 1.0)
    assert lr_advice([plateau(OVERSHOOT_MOVEMENT)]) == ("decrease_lr", 0.1)
    policy = DoctorPolicy()
    rewritten = policy.at_check(gd.Diagnosis([plateau(200.0)]), step=30, steps=150, restarts_left=1)
    assert (rewritten.action, rewritten.lr_factor) == ("restart", 0.1)
    late = policy.at_check(gd.Diagnosis([plateau(200.0)]), step=100, steps=150, restarts_left=1)
    assert (late.action, late.lr_factor) == ("adjust", 0.1)  # past LATEST_RESTART: in place
    assert policy.at_check(gd.Diagnosis([plateau(0.03)]), step=30, steps=150, restarts_left=1).action == "go_on"
    diverged = gd.Finding("loss_divergence", "warning", "run", [], {}, ["decrease_lr", "clip_grad_norm"])
    early = policy.at_check(gd.Diagnosis([diverged]), step=30, steps=150, restarts_left=1)
    assert (early.action, early.lr_factor, early.clipping) == ("restart", 0.1, ["clip_grad_norm"])
    assert policy.at_check(gd.Diagnosis([diverged]), step=30, steps=150, restarts_left=0).action == "adjust"


def test_the_detail_statistics_get_three_points_per_first_check_window_whatever_the_budget():
    """Checks come after max(30, steps // 10) steps: the statistics taken every n-th step are taken 3 times in that
    window, every 10th step on short budgets and sparser (cheaper) on long ones; gradient norms every step."""
    batches = _data()
    for steps, every in ((120, 10), (900, 30)):
        model = _mlp()
        result = gd.autotrain(model, torch.optim.Adam(model.parameters(), lr=1e-3), batches,
                              nn.functional.cross_entropy, steps=steps)
        run = result.run
        taken = run.steps[np.isfinite(run.history("weight_norm")[:, 0])]
        assert np.array_equal(np.diff(taken), np.full(len(taken) - 1, every)), (steps, taken[:5])
        assert len(taken) == steps // every
        assert np.isfinite(run.history("grad_norm")[:, 0]).all() and len(run.steps) == steps
