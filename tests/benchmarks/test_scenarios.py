"""The labelled scenario zoo (benchmarks/scenarios): its coverage, and every scenario's plain-torch label check.

The coverage tests ask for the whole zoo (MLP, CNN, recurrent and transformer families); the per-scenario tests
are parametrised over whatever the registry holds.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from benchmarks.scenarios import FAMILIES, LABELS, SCENARIOS, LabelError
from benchmarks.scenarios.base import SPLITS, Setup
from benchmarks.scenarios.checks import dead_unit_fractions, first_non_finite, loss_change, standardised

NAMES = list(SCENARIOS)
BROKEN = [name for name, s in SCENARIOS.items() if s.label != "healthy"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_zoo_has_at_least_60_scenarios() -> None:
    assert len(SCENARIOS) >= 60, f"{len(SCENARIOS)} scenarios: {Counter(s.family for s in SCENARIOS.values())}"


def test_at_least_a_third_are_healthy_controls() -> None:
    healthy = sum(s.label == "healthy" for s in SCENARIOS.values())
    assert 3 * healthy >= len(SCENARIOS), f"{healthy} healthy of {len(SCENARIOS)}"


@pytest.mark.parametrize("attribute, values", [("label", LABELS), ("family", FAMILIES)])
def test_every_label_and_family_is_present(attribute: str, values: tuple[str, ...]) -> None:
    present = {getattr(s, attribute) for s in SCENARIOS.values()}
    assert set(values) <= present, f"missing {attribute}s: {sorted(set(values) - present)}"


def test_every_label_has_dev_and_test_scenarios() -> None:
    splits = {(s.label, s.split) for s in SCENARIOS.values()}
    missing = [(label, split) for label in LABELS for split in SPLITS if (label, split) not in splits]
    assert not missing, f"(label, split) pairs without a scenario: {missing}"


@pytest.mark.parametrize("name", BROKEN)
def test_reference_is_healthy_on_the_same_task_and_data(name: str) -> None:
    scenario = SCENARIOS[name]
    reference = SCENARIOS[scenario.reference]
    assert reference.label == "healthy"
    broken, healthy = scenario.make(), reference.make()
    assert broken.task == healthy.task
    for ours, theirs in zip((*broken.train, *broken.test), (*healthy.train, *healthy.test)):
        assert ours.shape == theirs.shape
    assert torch.equal(broken.train[1], healthy.train[1]) and torch.equal(broken.test[1], healthy.test[1])


def _first_batch_output(setup) -> torch.Tensor:
    with torch.no_grad():
        return setup.model(setup.batch(0)[0])


@pytest.mark.parametrize("name", NAMES)
def test_make_is_deterministic(name: str) -> None:
    first, second = SCENARIOS[name].make(), SCENARIOS[name].make()
    for ours, theirs in zip(first.batch(0), second.batch(0)):
        assert torch.equal(ours, theirs)
    assert torch.equal(_first_batch_output(first), _first_batch_output(second))


@pytest.mark.parametrize("name", NAMES)
def test_label_check_holds_and_leaves_the_setup_untouched(name: str) -> None:
    scenario = SCENARIOS[name]
    setup = scenario.make()
    before = {key: value.clone() for key, value in setup.model.state_dict().items()}
    evidence = scenario.check(setup)
    assert isinstance(evidence, str) and evidence
    after = setup.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before), "check changed the scenario's model"


@pytest.mark.parametrize("name", BROKEN)
def test_label_check_rejects_the_healthy_reference(name: str) -> None:
    """A check that also passed on the healthy reference would not tell the label apart."""
    scenario = SCENARIOS[name]
    with pytest.raises(LabelError):
        scenario.check(SCENARIOS[scenario.reference].make())


# --- the generic helpers the MLP/CNN checks use, on hand-built setups -------------------------------------------

def _toy_setup(model: torch.nn.Module, inputs: torch.Tensor) -> Setup:
    targets = torch.arange(len(inputs)) % 2
    return Setup(model=model, optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
                 loss_fn=torch.nn.CrossEntropyLoss(), train=(inputs, targets), test=(inputs, targets),
                 task="classification", batch_size=len(inputs))


def test_dead_unit_fractions_counts_units_silent_on_every_example() -> None:
    linear = torch.nn.Linear(1, 4)
    with torch.no_grad():   # unit 0 always fires, 1 never, 2 fires only for x > 1, 3 never (bias -5)
        linear.weight.copy_(torch.tensor([[0.0], [0.0], [1.0], [1.0]]))
        linear.bias.copy_(torch.tensor([1.0, -1.0, -1.0, -5.0]))
    setup = _toy_setup(torch.nn.Sequential(linear, torch.nn.ReLU(), torch.nn.Linear(4, 2)),
                       torch.tensor([[0.0], [0.5], [2.0], [-1.0]]))
    assert dead_unit_fractions(setup) == [0.5]


def test_standardised_and_loss_change_leave_the_setup_alone() -> None:
    torch.manual_seed(0)
    inputs = 30 * torch.randn(32, 3) + 7
    setup = _toy_setup(torch.nn.Linear(3, 2), inputs)
    fixed = standardised(setup)
    assert torch.allclose(fixed.train[0], (inputs - inputs.mean()) / inputs.std())
    assert torch.equal(setup.train[0], inputs) and fixed.model is not setup.model
    before, after = loss_change(setup, 5, lr_scale=0.0)      # lr 0: plain SGD cannot move the loss
    assert before == after
    weights = setup.model.weight.clone()
    assert loss_change(setup, 5)[1] < before and torch.equal(setup.model.weight, weights)


def test_first_non_finite_finds_the_step_where_the_loss_overflows() -> None:
    torch.manual_seed(0)
    setup = _toy_setup(torch.nn.Linear(3, 2), torch.randn(8, 3))
    assert first_non_finite(setup, 5) is None
    setup.optimizer = lambda params: torch.optim.SGD(params, lr=float("inf"))
    assert first_non_finite(setup, 5) == 1          # step 0 is finite; its update makes every weight inf or nan
