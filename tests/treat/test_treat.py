"""gd.treat end to end: broken models become healthy on checkup and train better, measured in plain torch."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.cli import main as cli_main
from gradient_doctor.lab.tasks import LastStepRegressor, adding_problem
from gradient_doctor.lab.tasks import plain_mlp as mlp
from gradient_doctor.treat import treatment
from gradient_doctor.treat.render import compact_diff, to_text


def teacher_task(n: int = 256, dim: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable 10-class task: labels from a random linear teacher."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = (x @ torch.randn(dim, 10, generator=g)).argmax(1)
    return x, y


def trained(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, steps: int,
            lr: float = 1e-3, losses: list[float] | None = None) -> nn.Module:
    """Plain torch: a copy of `model` after `steps` of full-batch Adam; each step's loss goes to `losses`."""
    torch.manual_seed(1)
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if losses is not None:
            losses.append(loss.item())
    return model


def train_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module, steps: int) -> float:
    """The mean training loss over the last 10 of `steps` steps of `trained`."""
    losses: list[float] = []
    trained(model, x, y, loss_fn, steps, losses=losses)
    return sum(losses[-10:]) / 10


def gradient_ratio(model: nn.Module, x: torch.Tensor) -> float:
    """Plain torch: ‖∂L/∂W_first‖ / ‖∂L/∂W_last‖ for a sum-of-outputs loss."""
    model.zero_grad()
    model(x).sum().backward()
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    ratio = (weights[0].grad.norm() / weights[-1].grad.norm()).item()
    model.zero_grad()
    return ratio


def critical(diag: gd.Diagnosis) -> set[str]:
    return {f.kind for f in diag.findings if f.severity == "critical"}


@pytest.mark.parametrize("activation, gain", [(nn.Sigmoid, None), (nn.ReLU, None), (nn.Tanh, 3.0)],
                         ids=["sigmoid-20", "relu-20-default-init", "tanh-30-high-gain"])
def test_treat_heals_deep_mlps_and_they_train_better(activation, gain):
    torch.manual_seed(0)
    depth = 30 if activation is nn.Tanh else 20
    model = mlp(depth, 64, activation, gain)
    x, y = teacher_task(dim=64)
    loss_fn = nn.CrossEntropyLoss()
    before = gd.checkup(model, x, y, loss_fn)
    assert critical(before), before

    t = gd.treat(model, before, inputs=x, targets=y, loss_fn=loss_fn)

    assert t.before.to_dict()["findings"] == before.to_dict()["findings"]
    assert t.applied and t.after.healthy, str(t)
    ratio_before, ratio_after = gradient_ratio(model, x), gradient_ratio(t.model, x)
    assert abs(math.log10(ratio_after)) < abs(math.log10(ratio_before)) - 1  # an order of magnitude closer to 1
    assert 1e-2 < ratio_after < 1e2
    untreated = train_loss(model, x, y, loss_fn, steps=200)
    treated = train_loss(t.model, x, y, loss_fn, steps=200)
    assert treated < 0.5 * untreated, (untreated, treated)


def test_treat_heals_a_vanilla_rnn_through_time():
    torch.manual_seed(0)
    model = LastStepRegressor(nn.RNN(2, 32, batch_first=True))
    x, y = adding_problem(64, 100, seed=0)
    loss_fn = nn.MSELoss()
    before = gd.checkup(model, x, y, loss_fn)
    assert any(f.scope == "time" and f.severity == "critical" for f in before.findings), before

    t = gd.treat(model, before, inputs=x, targets=y, loss_fn=loss_fn)

    assert t.after.healthy, str(t)
    assert not any(isinstance(m, nn.RNN) for m in t.model.modules())
    # independent: the gradient reaching the first time step, relative to the last, in plain torch
    def first_over_last(m: nn.Module) -> float:
        inputs = x.clone().requires_grad_(True)
        loss_fn(m(inputs), y).backward()
        per_step = inputs.grad.norm(dim=(0, 2))
        return (per_step[0] / per_step[-1]).item()

    assert first_over_last(t.model) > 1e3 * first_over_last(model)
    # trained on one set, judged on a held-out one; predicting 1 scores 1/6 (the trivial baseline)
    xs, ys = adding_problem(256, 100, seed=1)
    held_x, held_y = adding_problem(512, 100, seed=2)
    untreated, treated = (trained(m, xs, ys, loss_fn, 300, lr=3e-3) for m in (model, t.model))
    with torch.no_grad():
        untreated_loss, treated_loss = (loss_fn(m(held_x), held_y).item() for m in (untreated, treated))
    assert treated_loss < 0.8 / 6 and untreated_loss > 0.9 / 6, (untreated_loss, treated_loss)


def test_a_remedy_that_makes_things_worse_is_rolled_back():
    torch.manual_seed(0)
    model = mlp(20, 64, nn.ReLU)
    gd.remedies.he_init(model)
    x, _ = teacher_task(dim=64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert gd.checkup(model, x).healthy

    t = gd.treat(model, ["xavier_init"], inputs=x)  # Xavier halves a ReLU net's signal every two layers

    assert t.applied == [] and [name for name, _ in t.rejected] == ["xavier_init"]
    assert "vanishing_gradient" in t.rejected[0][1] or "not closer" in t.rejected[0][1]
    for key, value in t.model.state_dict().items():
        assert torch.equal(value, state[key])
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])


def test_not_applicable_remedies_are_reported_and_opt_in_ones_wait_to_be_named():
    model = mlp(4, 16, nn.ReLU)
    x = torch.randn(32, 16)
    t = gd.treat(model, ["to_lstm"], inputs=x)
    assert t.applied == [] and t.rejected[0][0] == "to_lstm" and t.rejected[0][1].startswith("not applicable")


def test_inplace_treatment_keeps_the_object_and_preserves_dtype():
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid).double()
    x = torch.randn(64, 32, dtype=torch.float64)
    t = gd.treat(model, gd.checkup(model, x), inputs=x, inplace=True)
    assert t.model is model and t.applied
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert gd.checkup(model, x).healthy


def test_architecture_diff_lists_swapped_modules():
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid)
    t = gd.treat(model, ["swap_activation:relu"], inputs=torch.randn(64, 32))
    assert t.applied == ["swap_activation:relu"]
    assert t.diff[:2] == ["- 1: Sigmoid()", "+ 1: ReLU()"] and len(t.diff) == 2 * 19


def test_the_printed_diff_puts_identical_replacements_on_one_line():
    torch.manual_seed(0)
    t = gd.treat(mlp(20, 32, nn.Sigmoid), ["swap_activation:relu"], inputs=torch.randn(64, 32))
    line = f"~ {', '.join(str(i) for i in range(1, 38, 2))}: Sigmoid() -> ReLU()"
    assert compact_diff(t.diff) == [line]
    assert line in to_text(t, width=400)


def test_a_swap_redraws_only_the_layers_feeding_the_new_activations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), *[m for _ in range(15) for m in (nn.Linear(64, 64), nn.Sigmoid())],
                          nn.Linear(64, 4))
    x = torch.randn(128, 64)
    t = gd.treat(model, ["swap_activation:relu"], inputs=x)
    assert t.applied == ["swap_activation:relu"]
    for name in ("0", "32"):  # feeds the ReLU that was already there; the output layer
        assert torch.equal(t.model.get_submodule(name).weight, model.get_submodule(name).weight)
    assert not torch.equal(t.model[2].weight, model[2].weight)  # fed a Sigmoid, now a ReLU: He-drawn
    assert t.model[2].weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)


def test_the_checkup_runs_once_when_treat_finds_the_remedies_itself():
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid)
    x = torch.randn(64, 32)
    t = gd.treat(model, inputs=x)
    assert t.applied and t.after.healthy
    assert t.before.to_dict() == gd.checkup(model, x).to_dict()


def test_a_checkup_the_caller_took_is_not_taken_again_and_treats_alike(monkeypatch):
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid)
    x = torch.randn(64, 32)
    diag = gd.checkup(model, x)
    taken = []
    monkeypatch.setattr(treatment, "checkup", lambda m, *a, **k: taken.append(m) or gd.checkup(m, *a, **k))
    plain = gd.treat(model, diag, inputs=x)
    checkups = len(taken)
    reused = gd.treat(model, diag, inputs=x, before=diag)
    assert reused.before is diag and len(taken) == 2 * checkups - 1
    assert (reused.applied, reused.rejected, reused.after.to_dict()) == (plain.applied, plain.rejected,
                                                                         plain.after.to_dict())
    assert all(torch.equal(a, b) for a, b in zip(reused.model.state_dict().values(), plain.model.state_dict().values()))
    with pytest.raises(TypeError, match="before must be the checkup"):
        gd.treat(model, diag, inputs=x, before=gd.Diagnosis(diag.findings))
    other = nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8)))  # layers "2.0" etc.
    with pytest.raises(ValueError, match=r"layers the model does not have: \['2.0'\]"):
        gd.treat(model, diag, inputs=x, before=gd.checkup(other, x))


class _ScaledInputs(nn.Module):
    """A model with a parameter of its own at the root: checkup names that layer by its class, not by ''."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(32))
        self.body = mlp(20, 32, nn.Sigmoid)

    def forward(self, x):
        return self.body(x * self.scale)


def test_before_is_taken_for_a_model_with_parameters_at_its_root():
    torch.manual_seed(0)
    model = _ScaledInputs()
    x = torch.randn(64, 32)
    diag = gd.checkup(model, x)
    assert "_ScaledInputs" in [layer.name for layer in diag.measurement.layers]
    reused, plain = gd.treat(model, diag, inputs=x, before=diag), gd.treat(model, diag, inputs=x)
    assert reused.applied == plain.applied and reused.applied
    assert all(torch.equal(a, b) for a, b in zip(reused.model.state_dict().values(), plain.model.state_dict().values()))


def test_a_remedy_whose_model_cannot_run_the_batch_is_rolled_back():
    torch.manual_seed(0)
    model = mlp(5, 8, nn.Sigmoid)
    t = gd.treat(model, ["insert_norm:batch"], inputs=torch.randn(1, 8))  # batch norm needs > 1 sample
    assert t.applied == [] and t.rejected[0][1].startswith("failed: checkup of the treated model: ValueError")


def test_rebuild_optimizer_leaves_out_what_the_old_optimizer_left_out():
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid)
    old = torch.optim.SGD(model[-1].parameters(), lr=0.1)  # fine-tuning the head only
    t = gd.treat(model, ["swap_activation:relu"], inputs=torch.randn(64, 32))
    new = t.rebuild_optimizer(old)
    assert {id(p) for g in new.param_groups for p in g["params"]} == {id(p) for p in t.model[-1].parameters()}


def test_rebuild_optimizer_keeps_class_and_group_hyperparameters():
    torch.manual_seed(0)
    model = mlp(20, 32, nn.Sigmoid)
    x = torch.randn(64, 32)
    head = [p for n, p in model.named_parameters() if n.startswith("38.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("38.")]
    old = torch.optim.AdamW([{"params": body, "lr": 1e-3}, {"params": head, "lr": 5e-4, "weight_decay": 0.1}],
                            betas=(0.8, 0.99))
    t = gd.treat(model, ["swap_activation:relu", "he_init", "clip_grad_norm"], inputs=x)

    new = t.rebuild_optimizer(old)

    assert type(new) is torch.optim.AdamW
    assert {id(p) for g in new.param_groups for p in g["params"]} == {id(p) for p in t.model.parameters()}
    head_ids = {id(p) for n, p in t.model.named_parameters() if n.startswith("38.")}
    for group in new.param_groups:
        ids = {id(p) for p in group["params"]}
        if ids & head_ids:
            assert ids == head_ids and group["lr"] == 5e-4 and group["weight_decay"] == 0.1
        else:
            assert group["lr"] == 1e-3 and group["betas"] == (0.8, 0.99)
    # clipping was attached: one step with huge gradients moves no parameter by more than lr (Adam) and the
    # gradients the optimizer saw have total norm <= 1, checked in plain torch after the step
    assert len(t.clippers) == 1
    new.zero_grad()
    (t.model(x).sum() * 1e6).backward()
    new.step()
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in t.model.parameters()]))
    assert total.item() <= 1.0 + 1e-4


def test_trial_steps_keep_the_candidate_that_trains_best_and_reject_what_diverges():
    torch.manual_seed(0)
    model = mlp(12, 32, nn.Sigmoid)
    x, y = teacher_task(dim=32)
    loss_fn = nn.CrossEntropyLoss()
    diag = gd.checkup(model, x, y, loss_fn)
    t = gd.treat(model, diag, inputs=x, targets=y, loss_fn=loss_fn, trial_steps=30)
    assert t.applied

    def sgd_drop(m: nn.Module) -> float:  # plain torch: the trial's default, SGD lr 0.01 momentum 0.9, 30 steps
        m = copy.deepcopy(m)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        losses = []
        for _ in range(31):
            opt.zero_grad()
            loss = loss_fn(m(x), y)
            losses.append(loss.item())
            loss.backward()
            opt.step()
        return (losses[0] - losses[-1]) / losses[0]

    assert sgd_drop(t.model) > sgd_drop(model)

    def poisoned(params):  # a NaN step: every candidate's loss turns non-finite in training
        return torch.optim.SGD(params, lr=float("nan"))

    t = gd.treat(model, diag, inputs=x, targets=y, loss_fn=loss_fn, trial_steps=3, trial_optimizer=poisoned)
    assert t.applied == [] and any(reason.startswith("trial:") for _, reason in t.rejected)


def test_bad_arguments_say_what_was_expected():
    model = mlp(3, 8, nn.ReLU)
    with pytest.raises(ValueError, match="inputs="):
        gd.treat(model, ["he_init"])
    with pytest.raises(ValueError, match="unknown remedy 'he_int'"):
        gd.treat(model, ["he_int"], inputs=torch.randn(4, 8))
    with pytest.raises(TypeError, match="Diagnosis or a list of remedy names"):
        gd.treat(model, "he_init", inputs=torch.randn(4, 8))


def test_cli_treat_saves_the_treated_state_dict(tmp_path, capsys):
    factory = tmp_path / "models.py"
    factory.write_text(
        "import torch\nfrom torch import nn\n\n"
        "def build():\n    torch.manual_seed(0)\n"
        "    return nn.Sequential(*[m for _ in range(15) for m in (nn.Linear(32, 32), nn.Sigmoid())], "
        "nn.Linear(32, 4))\n"
    )
    out = tmp_path / "treated.pt"
    code = cli_main(["treat", f"{factory}:build", "--input-shape", "64", "32", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Sigmoid" in printed and "kept" in printed
    state = torch.load(out, weights_only=True)
    assert state["0.weight"].shape == (32, 32) and state["30.weight"].shape == (4, 32)


def test_report_of_a_treatment_shows_the_diff_and_both_budgets(tmp_path):
    torch.manual_seed(0)
    model = mlp(12, 16, nn.Sigmoid)
    x = torch.randn(64, 16)
    t = gd.treat(model, gd.checkup(model, x), inputs=x)
    page = gd.report(t, tmp_path / "t.html").read_text()
    swapped = ", ".join(name for name, m in model.named_children() if isinstance(m, nn.Sigmoid))
    assert "swap_activation:relu" in page and f"~ {swapped}: Sigmoid() -&gt; ReLU()" in page  # one line for the run
    for diagnosis in (t.before, t.after):  # the waterfalls' totals, in orders of magnitude
        orders = math.log10(diagnosis.measurement.budget.end_to_end)
        assert f"end to end: {orders:+.3g} orders of magnitude" in page, orders


def test_worse_reason_names_what_grew():
    from gradient_doctor.treat.health import Health, worse_reason
    before = Health(frozenset(), frozenset({"vanishing_gradient", "dead_units"}), 2, 3.0)
    more_critical = Health(frozenset({"vanishing_gradient"}), frozenset(), 1, 1.0)
    assert worse_reason(before, more_critical) == "more critical problems (0 -> 1 critical finding kinds)"
    more = Health(frozenset(), frozenset({"vanishing_gradient", "dead_units"}), 3, 1.0)
    assert worse_reason(before, more) == "more problems (2 -> 3 warning/critical findings)"
    fewer = Health(frozenset(), frozenset({"dead_units"}), 1, 3.05)
    assert worse_reason(before, fewer) is None  # one problem fewer, budget within MIN_GAIN
    drifted = Health(frozenset(), frozenset({"dead_units"}), 1, 3.5)
    assert worse_reason(before, drifted).startswith("gradient budget not closer")
    healthy = Health(frozenset(), frozenset(), 0, 3.5)
    assert worse_reason(before, healthy) is None  # no problem left: the budget's drift does not matter


def test_dead_units_from_negative_biases_get_their_biases_zeroed_and_keep_their_weights():
    # an identity-recurrence ReLU RNN (IRNN) whose biases were set to -3: every unit dead; the minimal repair zeroes
    # the biases and keeps the chosen recurrence, which a re-draw (he_init) would replace
    torch.manual_seed(0)
    rnn = nn.RNN(1, 16, nonlinearity="relu", batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.eye(16))
        rnn.bias_ih_l0.fill_(-3.0)
        rnn.bias_hh_l0.zero_()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnn, nn.Linear(16, 2)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])

    model, x = Net(), torch.rand(64, 20, 1)
    treated = gd.treat(model, inputs=x, targets=torch.randint(0, 2, (64,)), loss_fn=nn.functional.cross_entropy)
    assert treated.applied == ["zero_biases"]
    assert torch.equal(treated.model.rnn.weight_hh_l0, torch.eye(16))
    assert torch.equal(treated.model.rnn.weight_ih_l0, model.rnn.weight_ih_l0)
    assert (model.rnn(x)[0] > 0).float().mean() == 0  # plain torch: every unit dead before
    assert (treated.model.rnn(x)[0] > 0).float().mean() > 0.2  # and alive after
