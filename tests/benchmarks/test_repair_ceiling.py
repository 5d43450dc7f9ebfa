"""The repair ceiling's oracle trains what the repair benchmark's plain arm trains: with no fix and the scenario's
own learning rate its metric is the plain arm's; its fixes do what they say, checked on the model's tensors."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks import repair, repair_ceiling
from benchmarks.scenarios import SCENARIOS, evaluate


def test_the_unfixed_trial_at_the_own_learning_rate_is_plain_training():
    scenario = SCENARIOS["mlp_relu_healthy"]
    plain = scenario.make()
    repair.plain_arm(plain, 40)
    expected = repair.metric(plain.task, evaluate(plain))
    assert repair_ceiling._train(scenario.make(), "as built", None, 1.0, 40) == expected
    assert repair_ceiling._train(scenario.make(), "as built", None, 1e-3, 40) != expected  # the rate reaches the steps


def test_fixes_change_what_they_name_and_nothing_else():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Sigmoid(), nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(-3.0)
    weights = [model[0].weight.clone(), model[2].weight.clone()]
    with torch.no_grad():
        repair_ceiling.FIXES["zero biases"](model)
    assert all(torch.count_nonzero(m.bias) == 0 for m in (model[0], model[2]))
    assert torch.equal(model[0].weight, weights[0]) and torch.equal(model[2].weight, weights[1])
    with torch.no_grad():
        repair_ceiling.FIXES["saturating -> relu, he"](model)
    assert isinstance(model[1], nn.ReLU)
    assert abs(model[0].weight.var().item() - 2 / 5) < 0.4  # He: variance 2 / fan_in, 40 draws


def test_every_healthy_twin_is_a_known_fix_that_applies_to_its_scenario():
    for name, fix in repair_ceiling.TWINS.items():
        assert fix in repair_ceiling.FIXES and fix != "as built", (name, fix)
        assert repair_ceiling._applicable(fix, SCENARIOS[name].make().model), (name, fix)
