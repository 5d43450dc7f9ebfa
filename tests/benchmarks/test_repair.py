"""The repair benchmark: its success criterion and aggregation against hand-computed values, the advice it follows,
and the --quick subset through the real pipeline (floor: success rate >= 0.75, every treated metric beats the
untreated one)."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

from benchmarks import repair
from benchmarks.scenarios import SCENARIOS, Scenario


def test_success_criterion_hand_computed():
    # classification: 90 % of the reference's accuracy; 0.9 x 0.5 = 0.45
    assert repair.succeeded("classification", 0.45, 0.5)
    assert not repair.succeeded("classification", 0.449, 0.5)
    assert repair.succeeded("classification", 0.99, 0.5)
    assert not repair.succeeded("classification", math.nan, 0.5)
    # regression: loss within 10 % of the reference's; 1.1 x 0.25 = 0.275
    assert repair.succeeded("regression", 0.27, 0.25)
    assert repair.succeeded("regression", 0.1, 0.25)
    assert not repair.succeeded("regression", 0.28, 0.25)
    assert not repair.succeeded("regression", math.nan, 0.25)
    assert not repair.succeeded("regression", math.inf, 0.25)
    with pytest.raises(ValueError, match="task must be"):
        repair.succeeded("ranking", 0.5, 0.5)


def test_gain_is_positive_when_better():
    assert repair.gain("classification", 0.125, 0.875) == 0.75
    assert repair.gain("regression", 0.5, 0.125) == 0.375
    assert repair.gain("regression", 0.125, 0.5) == -0.375


def _row(name, label, task, success, gain=None, ratio=None, nothing=False, error=None):
    return {"name": name, "label": label, "task": task, "success": success, "gain": gain, "time_ratio": ratio,
            "nothing_applied": nothing, "error": error}


def test_aggregate_hand_computed():
    rows = [
        _row("a", "vanishing", "classification", True, gain=0.5, ratio=1.0),
        _row("b", "vanishing", "classification", False, gain=0.25, ratio=2.0, nothing=True),
        _row("c", "plateau", "regression", True, gain=0.125, ratio=1.5),
        _row("d", "plateau", "regression", True, gain=math.inf, ratio=4.0),  # untreated loss was inf
        _row("e", "exploding", "unknown", False, error="RuntimeError: boom"),
    ]
    summary = repair.aggregate(rows)
    assert (summary["n"], summary["successes"], summary["success_rate"]) == (5, 3, 0.6)
    assert summary["by_label"] == {"exploding": {"n": 1, "successes": 0, "rate": 0.0},
                                   "plateau": {"n": 2, "successes": 2, "rate": 1.0},
                                   "vanishing": {"n": 2, "successes": 1, "rate": 0.5}}
    assert summary["mean_gain"]["classification"] == {"mean": 0.375, "n": 2, "not_finite": 0}
    assert summary["mean_gain"]["regression"] == {"mean": 0.125, "n": 1, "not_finite": 1}
    assert summary["time_ratio_median"] == 1.75  # of 1.0, 1.5, 2.0, 4.0
    assert summary["time_ratio_mean"] == 2.125
    assert summary["nothing_applied"] == ["b"]
    assert summary["errors"] == {"e": "RuntimeError: boom"}


def test_a_scenario_that_raises_is_a_recorded_failure():
    def broken_make():
        raise RuntimeError("cannot build")

    scenario = Scenario("raises", "mlp", "vanishing", "dev", steps=5, make=broken_make, check=lambda s: "",
                        reference="mlp_relu_healthy")
    row = repair.repair(scenario, _FixedReferences(0.9))
    assert row["error"] == "RuntimeError: cannot build"
    flat = repair.arm_rows([row], "autotrain")
    assert flat[0]["success"] is False
    assert repair.aggregate(flat)["errors"] == {"raises": "RuntimeError: cannot build"}


class _FixedReferences(repair.References):
    def metric(self, name: str, steps: int) -> float:
        return self.value

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value


def _plain_torch_accuracy(name: str, steps: int) -> float:
    """The reference scenario trained with a hand-written loop (no benchmark code) for `steps` and scored by hand."""
    setup = SCENARIOS[name].make()
    model, optimizer = setup.model, setup.optimizer(setup.model.parameters())
    torch.manual_seed(0)
    for step in range(steps):
        inputs, targets = setup.batch(step)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    with torch.no_grad():
        x_test, y_test = setup.test
        return float((model.eval()(x_test).argmax(1) == y_test).float().mean())


def test_quick_subset_meets_the_floor():
    broken, healthy = repair.chosen("test", quick=True, names=None)
    assert [s.name for s in broken] == list(repair.QUICK) and healthy == []
    rows, _ = repair.run_all(broken, arms=("autotrain",), repeats=2)
    flat = repair.arm_rows(rows, "autotrain")
    summary = repair.aggregate(flat)
    assert summary["errors"] == {}
    assert summary["success_rate"] >= 0.75, [(r["name"], r["rounds"], r["metric"]) for r in flat]
    for row, arm in zip(rows, flat):
        assert arm["gain"] > 0, (row["name"], row["untreated"], arm["metric"])
        assert arm["time_ratio"] > 0
        # timed twice, interleaved: the ratio is the median of both, and the repeat trained the same model
        assert len(arm["all_time_ratios"]) == 2 and arm["time_ratio"] == statistics.median(arm["all_time_ratios"])
        assert not arm.get("nondeterministic"), row["name"]
    first = rows[0]  # its reference arm against a hand-written training loop
    assert first["reference"] == pytest.approx(_plain_torch_accuracy(SCENARIOS[first["name"]].reference,
                                                                    SCENARIOS[first["name"]].steps), abs=0.01)
