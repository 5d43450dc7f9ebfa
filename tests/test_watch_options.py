"""gd.watch refuses what it cannot record faithfully, with what was expected and what was got (issue 18, items 6, 7
and 9), and records closure optimizers (LBFGS) on the right step, checked against plain torch."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


@pytest.mark.parametrize("value, error, got", [
    ("x", gd.InvalidType, "got str: 'x'"), (-1, gd.InvalidValue, "got -1"), (float("nan"), gd.InvalidValue, "got nan"),
    (5.0, gd.InvalidValue, "got 5.0"), (0, gd.InvalidValue, "got 0"), (True, gd.InvalidType, "got bool"),
])
def test_saturation_eps_must_be_a_fraction_below_one_half(value, error, got):
    with pytest.raises(error, match=r"saturation_eps must be a number in \(0, 0.5\)") as err:
        gd.watch(_model(), saturation_eps=value)
    assert got in str(err.value)


@pytest.mark.parametrize("option", ["resume", "activations"])
def test_flags_must_be_booleans(tmp_path, option):
    with pytest.raises(gd.InvalidType, match=f"{option} must be True or False, got str: 'no'"):
        gd.watch(_model(), log_dir=tmp_path, **{option: "no"})
    assert not (tmp_path / "run.db").exists()


def test_a_lazy_module_not_yet_materialised_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(gd.InvalidValue, match=r"lazy parameters not materialised yet \(0.weight, 2 in all\)"):
        gd.watch(nn.Sequential(nn.LazyLinear(3)), log_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with gd.watch(nn.Sequential(nn.Linear(3, 3)), log_dir=tmp_path / "run"):  # the retry works
        pass


def test_an_optimizer_holding_none_of_the_models_parameters_is_refused():
    other = nn.Linear(2, 2)
    with pytest.raises(gd.InvalidValue, match="holds none of Sequential's 4 parameter tensors"):
        gd.watch(_model(), torch.optim.SGD(other.parameters(), lr=0.1))
    model = _model()  # an optimizer over part of the model is fine (a frozen or separately optimised part)
    gd.watch(model, torch.optim.SGD(model[0].parameters(), lr=0.1)).close()


@pytest.mark.parametrize("name", ["grad_norm", "dead_frac", "skipped", "input_nonfinite"])
def test_a_step_metric_may_not_take_a_name_the_record_uses(name):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        model(torch.randn(2, 3)).sum().backward()
        opt.step()
        with pytest.raises(gd.InvalidValue, match=f"may not be named '{name}'"):
            run.step(loss=1.0, **{name: 5.0})
        run.step(loss=1.0, my_metric=5.0)
    assert run.history("my_metric").tolist() == [5.0]
    assert run.history("grad_norm").shape == (1, 3)  # still the per-layer metric


def _plain_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: int) -> float:
    """The gradient norm of `layer`'s parameters at the model's current weights, on a twin (plain torch)."""
    twin = _model()
    twin.load_state_dict(model.state_dict())
    (twin(x) - y).pow(2).mean().backward()
    return float(torch.cat([p.grad.flatten() for p in twin[layer].parameters()]).norm())


@pytest.mark.parametrize("keyword", [False, True], ids=["step(closure)", "step(closure=closure)"])
@pytest.mark.parametrize("make", [lambda p: torch.optim.LBFGS(p, lr=0.5, max_iter=4),
                                  lambda p: torch.optim.SGD(p, lr=0.1)], ids=["LBFGS", "SGD"])
def test_closure_optimizers_record_the_gradient_at_the_weights_each_step_starts_from(make, keyword):
    model = _model()
    opt = make(model.parameters())
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    expected, plain_losses = [], []

    def closure():
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with gd.watch(model, opt) as run:
            for _ in range(4):
                expected.append([_plain_grad_norm(model, x, y, i) for i in (0, 2)])
                loss = opt.step(closure=closure) if keyword else opt.step(closure)
                plain_losses.append(float(loss.detach()))
                run.step(loss=loss)
    np.testing.assert_array_equal(run.steps, np.arange(4))
    np.testing.assert_allclose(run.history("grad_norm")[:, [0, 2]], expected, rtol=1e-5)
    np.testing.assert_allclose(run.history("loss"), plain_losses)
    assert len({round(e[0], 6) for e in expected}) == 4  # the weights moved: a one-step lag could not pass
