"""The run rules as pure functions over hand-made histories: hysteresis, the non-finite locator, the loss's trend
against its own noise (checked against a plain-numpy Theil–Sen line)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gradient_doctor.diagnose.run.divergence import loss_divergence
from gradient_doctor.diagnose.run.exploding import exploding_gradient
from gradient_doctor.diagnose.run.non_finite import non_finite
from gradient_doctor.diagnose.run.plateau import loss_plateau
from gradient_doctor.diagnose.run.updates import large_updates
from gradient_doctor.diagnose.run.vanishing import vanishing_gradient
from gradient_doctor.probe.metrics import LAYER_METRICS
from gradient_doctor.record.history import History

LAYERS, NUMEL = ["0", "1", "2", "3"], np.array([100, 0, 100, 0])


def history(steps: int = 100, loss: np.ndarray | None = None, loss_at_start: float | None = None, **values) -> History:
    """Four layers (Linear, ReLU, Linear, ReLU); every metric NaN unless given (steps × 4)."""
    table = {m: np.full((steps, len(LAYERS)), np.nan) for m in LAYER_METRICS} | values
    loss = np.full(steps, np.nan) if loss is None else loss
    start = float(np.median(loss[np.isfinite(loss)][:5])) if loss_at_start is None and np.isfinite(loss).any() \
        else loss_at_start
    return History(LAYERS, NUMEL, np.arange(steps), table, loss, start)


def gradients(steps: int, spikes: dict[int, float]) -> np.ndarray:
    """grad_norm ≈ 1 with 2 % noise on the two Linear layers; layer 0 multiplied by `spikes[step]`."""
    rng = np.random.default_rng(0)
    grad = np.full((steps, len(LAYERS)), np.nan)
    grad[:, [0, 2]] = np.exp(rng.normal(0, 0.02, (steps, 2)))
    for step, factor in spikes.items():
        grad[step, 0] *= factor
    return grad


def exploding(grad: np.ndarray):
    return exploding_gradient(history(len(grad), grad_norm=grad, nonfinite=np.where(np.isnan(grad), np.nan, 0.0)))


def test_one_spike_is_info_a_sustained_rise_is_critical():
    (spike,) = exploding(gradients(100, {50: 100.0}))
    assert spike.severity == "info" and spike.layers == ["0"] and spike.evidence["first_step"] == 50
    assert spike.evidence["gradient"]["0"]["episodes"] == 1
    (rise,) = exploding(gradients(100, {t: 100.0 for t in range(60, 100)}))
    assert rise.severity == "critical" and rise.evidence["first_step"] == 60
    assert rise.evidence["gradient"]["0"]["longest"] == 40
    (recurring,) = exploding(gradients(100, {30: 100.0, 70: 100.0}))
    assert recurring.severity == "warning" and recurring.evidence["gradient"]["0"]["episodes"] == 2
    assert exploding(gradients(100, {50: 10.0})) == []  # 10x is within e^3


def test_hovering_at_the_threshold_is_one_episode():
    # 25x, 10x, 25x, 10x: above e^3 to enter, never back under e^1.5 to leave
    (f,) = exploding(gradients(100, {50: 25.0, 51: 10.0, 52: 25.0, 53: 10.0}))
    assert f.evidence["gradient"]["0"]["episodes"] == 1 and f.evidence["gradient"]["0"]["longest"] == 4
    assert f.evidence["gradient"]["0"]["peak_ratio"] == pytest.approx(25.0, rel=0.1)


def test_non_finite_names_the_first_step_then_the_first_layer_in_forward_order():
    nonfinite = np.zeros((50, 4))
    nonfinite[:, [1, 3]] = np.nan
    nonfinite[30:, 2] = 3
    nonfinite[31:, 0] = 1
    loss = np.where(np.arange(50) < 32, 1.0, np.nan)
    (f,) = non_finite(history(50, loss=loss, nonfinite=nonfinite, grad_norm=np.ones((50, 4))))
    assert (f.evidence["first_step"], f.evidence["where"], f.layers) == (30, "gradients", ["2"])
    assert f.evidence["first_step_by_kind"] == {"inputs": None, "activations": None, "loss": 32, "gradients": 30,
                                                "weights": None}
    assert f.severity == "critical"


def test_a_missing_loss_is_nan_only_on_its_cadence_and_with_non_finite_gradients_after_it():
    loss = np.where(np.arange(100) % 10 == 0, 1.0, np.nan)
    nonfinite = np.tile([0.0, np.nan, 0.0, np.nan], (100, 1))
    assert non_finite(history(100, loss=loss, nonfinite=nonfinite)) == []
    loss[60:] = np.nan  # stopped logging: the gradients stay finite
    assert non_finite(history(100, loss=loss, nonfinite=nonfinite)) == []
    nonfinite[60:, 2] = 1  # the record keeps a NaN loss as a missing value; the gradients corroborate it
    (f,) = non_finite(history(100, loss=loss, nonfinite=nonfinite))
    assert (f.evidence["first_step"], f.evidence["where"], f.layers) == (60, "loss", ["2"])
    assert f.evidence["first_layer_in"] == "gradients"


def theil_sen(loss: np.ndarray) -> tuple[float, float]:
    """Drift over the window and residual noise, in plain numpy."""
    t = np.arange(len(loss), dtype=float)
    i, j = np.triu_indices(len(loss), k=1)
    slope = np.median((loss[j] - loss[i]) / (t[j] - t[i]))
    residuals = loss - np.median(loss - slope * t) - slope * t
    return slope * (len(loss) - 1), 1.4826 * np.median(np.abs(residuals - np.median(residuals)))


def test_loss_trend_is_judged_against_its_own_noise():
    rng = np.random.default_rng(1)
    flat = 2.0 + rng.normal(0, 0.1, 150)
    (plateau,) = loss_plateau(history(150, loss=flat))
    drift, noise = theil_sen(flat)
    assert plateau.severity == "warning"
    assert plateau.evidence["drift"] == pytest.approx(drift, rel=1e-3) and abs(drift) <= noise
    assert plateau.evidence["noise"] == pytest.approx(noise, rel=1e-3)
    assert loss_divergence(history(150, loss=flat)) == []

    rising = flat + np.linspace(0, 1.0, 150)  # +1.0 over the window against a noise of 0.1
    (divergence,) = loss_divergence(history(150, loss=rising))
    assert divergence.severity == "warning"
    assert divergence.evidence["drift"] == pytest.approx(theil_sen(rising)[0], rel=1e-3)
    assert loss_plateau(history(150, loss=rising)) == []

    falling = flat - np.linspace(0, 1.0, 150)
    assert loss_plateau(history(150, loss=falling)) == [] and loss_divergence(history(150, loss=falling)) == []


def test_a_flat_loss_after_progress_is_info():
    rng = np.random.default_rng(2)
    (f,) = loss_plateau(history(100, loss=0.3 + rng.normal(0, 0.02, 100), loss_at_start=2.0))
    assert f.severity == "info" and f.remedies == []


def test_vanishing_needs_both_the_gradient_and_the_update_gap():
    steps = 20
    grad = np.tile([1e-6, np.nan, 1.0, np.nan], (steps, 1))
    weight = np.tile([1.0, np.nan, 1.0, np.nan], (steps, 1))
    small_updates = np.tile([1e-7, np.nan, 0.1, np.nan], (steps, 1))
    (f,) = vanishing_gradient(history(steps, grad_norm=grad, weight_norm=weight, update_norm=small_updates))
    assert f.layers == ["0"] and f.severity == "critical"
    assert f.evidence["grad_ratio"]["0"] == pytest.approx(1e-6)
    assert f.evidence["update_ratio"]["0"] == pytest.approx(1e-6)
    # an adaptive optimiser's updates: tiny gradient, normal-sized steps, so the layer still learns
    even_updates = np.tile([0.1, np.nan, 0.1, np.nan], (steps, 1))
    assert vanishing_gradient(history(steps, grad_norm=grad, weight_norm=weight, update_norm=even_updates)) == []
    # frozen (no update recorded while other layers have theirs)
    frozen = np.tile([np.nan, np.nan, 0.1, np.nan], (steps, 1))
    assert vanishing_gradient(history(steps, grad_norm=grad, weight_norm=weight, update_norm=frozen)) == []


@pytest.mark.parametrize("level, severity", [(0.5, None), (1e-2, None), (1e-4, "warning"), (1e-9, "critical")])
def test_time_ratio_thresholds(level, severity):
    from gradient_doctor.diagnose.run.time import through_time

    ratio = np.full((40, len(LAYERS)), np.nan)
    ratio[::10, 0] = level * np.array([0.5, 1.0, 2.0, 1.0])  # recorded every 10th step; median = level
    h = dataclasses.replace(history(40, time_ratio=ratio), kinds=["LSTM", "ReLU", "Linear", "ReLU"])
    found = through_time(h)
    assert [f.severity for f in found] == ([] if severity is None else [severity])
    if found:
        assert found[0].scope == "time" and found[0].layers == ["0"] and found[0].remedies[0] == "forget_gate_bias"
        assert found[0].evidence["time_ratio_median"] == pytest.approx(level, rel=1e-3)


@pytest.mark.parametrize("skipped_total, severity", [(3, None), (40, "warning"), (120, "critical")])
def test_persistent_skips(skipped_total, severity):
    from gradient_doctor.diagnose.run.skipped import persistent_skips

    skipped = np.zeros(100)
    skipped[10 : 10 + skipped_total // 2] = 1.0  # iterations skipped just before these steps
    skipped[60] += skipped_total - skipped_total // 2
    found = persistent_skips(dataclasses.replace(history(100), skipped=skipped))
    assert [f.severity for f in found] == ([] if severity is None else [severity])
    if found:
        assert found[0].kind == "non_finite" and found[0].evidence["skipped"] == skipped_total
        assert found[0].evidence["skipped_fraction"] == pytest.approx(skipped_total / (100 + skipped_total), rel=1e-3)
        assert found[0].evidence["first_step_after_skips"] == 10


def test_gradients_rising_while_the_loss_falls_are_learning_not_exploding():
    grad = gradients(100, {t: 100.0 for t in range(60, 100)})
    nonfinite = np.where(np.isnan(grad), np.nan, 0.0)
    falling = np.linspace(2.0, 0.5, 100)
    (learning,) = exploding_gradient(history(100, loss=falling, grad_norm=grad, nonfinite=nonfinite))
    assert learning.severity == "info" and learning.evidence["loss_fell"]
    rising = falling.copy()
    rising[70:] = 3.0  # the loss goes above its early level (2.0) after the rise began
    (hurt,) = exploding_gradient(history(100, loss=rising, grad_norm=grad, nonfinite=nonfinite))
    assert hurt.severity == "critical" and not hurt.evidence["loss_fell"]
    broken = falling.copy()
    broken[80] = np.inf
    (overflow,) = exploding_gradient(history(100, loss=broken, grad_norm=grad, nonfinite=nonfinite))
    assert overflow.severity == "critical"


def test_a_plateau_needs_thirty_losses():
    rng = np.random.default_rng(0)
    flat = 2.3 + rng.normal(0, 0.01, 100)
    assert loss_plateau(history(29, loss=flat[:29])) == []
    (f,) = loss_plateau(history(30, loss=flat[:30]))
    assert f.severity == "warning"


def test_units_that_die_mid_run_are_dead():
    from gradient_doctor.diagnose.run.dead_units import dead_units
    dead = np.full((100, len(LAYERS)), np.nan)
    dead[::10, 1] = np.r_[np.zeros(3), np.ones(7)]  # recorded every 10 steps: alive, then dead from step 30
    (f,) = dead_units(history(100, dead_frac=dead))
    assert f.layers == ["1"] and f.severity == "critical"
    dead[::10, 1] = np.r_[np.zeros(6), np.ones(4)]  # dead only on the last 4 of 10 recorded steps: not yet
    assert dead_units(history(100, dead_frac=dead)) == []


def converged(steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A run that converged within its first 40 steps: gradients 0.1 -> 1e-5, loss 1.4 -> 1e-6, then Adam-like
    recurring spikes of both (gradient x100 of the converged level, loss to 1e-3) every 50 steps."""
    t = np.arange(steps)
    level = np.maximum(0.1 * np.exp(-t / 4.0), 1e-5)
    grad = np.full((steps, len(LAYERS)), np.nan)
    grad[:, [0, 2]] = level[:, None] * np.exp(np.random.default_rng(1).normal(0, 0.05, (steps, 2)))
    loss = np.maximum(1.4 * np.exp(-t / 3.0), 1e-6)
    for step in range(60, steps, 50):
        grad[step:step + 2, [0, 2]] *= 100.0
        loss[step:step + 2] = 1e-3
    return grad, loss


def test_a_converged_run_is_not_exploding_whole_or_in_its_late_window():
    grad, loss = converged()
    nonfinite = np.where(np.isnan(grad), np.nan, 0.0)
    whole = exploding_gradient(history(len(loss), loss=loss, grad_norm=grad, nonfinite=nonfinite))
    assert all(f.severity == "info" for f in whole)
    # the live check's window: only post-convergence steps, the run's start known through loss_at_start
    late = slice(200, None)
    window = exploding_gradient(history(200, loss=loss[late], loss_at_start=float(np.median(loss[:5])),
                                        grad_norm=grad[late], nonfinite=nonfinite[late]))
    assert window and all(f.severity == "info" for f in window)  # the spikes are seen, and judged harmless
    # the same spikes with the loss rising above where the run started are harm
    hurt = loss[late].copy()
    hurt[60:62] = 2.0
    (rose,) = exploding_gradient(history(200, loss=hurt, loss_at_start=float(np.median(loss[:5])),
                                         grad_norm=grad[late], nonfinite=nonfinite[late]))
    assert rose.severity == "warning"


def stepped(step: float, loss: np.ndarray) -> list:
    """Two trainable Linear layers with weight norm 2 (layer 0) and 4 (layer 2), each moving `step` of its norm on
    every 10th step (the update cadence), under `loss`."""
    steps = len(loss)
    grad, weight, update = (np.full((steps, len(LAYERS)), np.nan) for _ in range(3))
    grad[:, [0, 2]] = 1.0
    weight[::10, 0], weight[::10, 2] = 2.0, 4.0
    update[::10, 0], update[::10, 2] = 2.0 * step, 4.0 * step
    return large_updates(history(steps, loss=loss, grad_norm=grad, weight_norm=weight, update_norm=update))


def test_steps_that_rewrite_a_tenth_of_the_weights_are_a_learning_rate_far_too_high():
    barely = np.linspace(6.4, 6.1, 100)  # a loss that keeps a few percent of its start
    (finding,) = stepped(0.25, barely)
    assert finding.kind == "large_updates" and finding.severity == "warning"
    assert finding.remedies[0] == "decrease_lr" and finding.evidence["median_relative_update"] == 0.25
    assert stepped(0.05, barely) == []  # half the threshold: a fast but healthy step
    assert stepped(0.25, np.linspace(6.4, 1.0, 100)) == []  # the loss fell below half its start: it learns


def test_a_divergence_is_a_rise_that_matters_against_the_loss_not_only_its_noise():
    rng = np.random.default_rng(3)
    quiet = 0.74 + rng.normal(0, 0.002, 40)
    small = quiet + np.linspace(0, 0.74 * 0.03, 40)  # +3 % of the level: many noise sigma, yet no divergence
    assert theil_sen(small)[0] > 3 * theil_sen(small)[1]
    assert loss_divergence(history(40, loss=small)) == []
    large = quiet + np.linspace(0, 0.74 * 0.3, 40)  # +30 %
    (f,) = loss_divergence(history(40, loss=large))
    start = float(np.median(large[:10]))  # the window's first quarter
    assert f.severity == "warning" and f.evidence["least_rise"] == pytest.approx(0.1 * start, rel=1e-3)


def test_an_isolated_spike_with_which_the_loss_jumped_twenty_fold_is_a_warning():
    grad = gradients(100, {50: 100.0})
    nonfinite = np.where(np.isnan(grad), np.nan, 0.0)
    for jump, severity in ((30.0, "warning"), (5.0, "info")):
        loss = np.full(100, 2.0)
        loss[50] = 2.0 * jump
        (f,) = exploding_gradient(history(100, loss=loss, grad_norm=grad, nonfinite=nonfinite))
        assert f.severity == severity and f.evidence["loss_jump"] == pytest.approx(jump)


def test_a_small_relative_update_of_large_weights_moved_at_a_normal_pace_is_not_vanishing():
    # layer 0: a thousandth of the gradient and of the relative update, but weights 1000x larger, so its step per
    # entry is as large as layer 2's (Adam's steps are about lr per entry): the weights' scale, not a lost gradient
    steps = 20
    grad = np.tile([1e-3, np.nan, 1.0, np.nan], (steps, 1))
    weight = np.tile([1000.0, np.nan, 1.0, np.nan], (steps, 1))
    update = np.tile([0.1, np.nan, 0.1, np.nan], (steps, 1))
    assert vanishing_gradient(history(steps, grad_norm=grad, weight_norm=weight, update_norm=update)) == []
    (f,) = vanishing_gradient(history(steps, grad_norm=grad, weight_norm=weight, update_norm=update * [1e-3, 1, 1, 1]))
    assert f.layers == ["0"] and f.evidence["step_rms"]["0"] == pytest.approx(1e-4 / np.sqrt(100))


def test_large_updates_say_where_they_began():
    loss = np.linspace(6.4, 6.1, 100)
    steps = len(loss)
    grad, weight, update = (np.full((steps, len(LAYERS)), np.nan) for _ in range(3))
    grad[:, [0, 2]], weight[::10, [0, 2]] = 1.0, 2.0
    update[::10, [0, 2]] = np.where(np.arange(0, steps, 10) >= 40, 0.5, 0.002)[:, None]  # 0.25 of 2 from step 40
    (f,) = large_updates(history(steps, loss=loss, grad_norm=grad, weight_norm=weight, update_norm=update))
    assert f.evidence["first_step"] == 40 and f.evidence["median_relative_update"] == 0.25
