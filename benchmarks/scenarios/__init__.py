"""The labelled scenario zoo: every scenario by name.

    >>> from benchmarks.scenarios import SCENARIOS, select
    >>> len(SCENARIOS) >= 60, sorted({s.label for s in SCENARIOS.values()})
    >>> dev = select(split="dev"); broken = select(label=lambda l: l != "healthy")

Each family module defines `SCENARIOS: list[Scenario]`; names are unique across the zoo.
"""

from __future__ import annotations

from .base import FAMILIES, LABELS, LabelError, Scenario, Setup, evaluate, train, train_step
from . import cnn, mlp, recurrent, transformer

__all__ = ["SCENARIOS", "select", "Scenario", "Setup", "LabelError", "LABELS", "FAMILIES", "train", "train_step",
           "evaluate"]


def _registry() -> dict[str, Scenario]:
    registry: dict[str, Scenario] = {}
    for module in (mlp, cnn, recurrent, transformer):
        for scenario in module.SCENARIOS:
            if scenario.name in registry:
                raise ValueError(f"two scenarios are named {scenario.name!r} ({module.__name__})")
            registry[scenario.name] = scenario
    for scenario in registry.values():
        if scenario.reference is not None and scenario.reference not in registry:
            raise ValueError(f"scenario {scenario.name!r}: reference {scenario.reference!r} is not a scenario")
    return registry


SCENARIOS: dict[str, Scenario] = _registry()


def select(**criteria: object) -> list[Scenario]:
    """Scenarios whose attributes equal the given values (or satisfy them, for callables), in zoo order.

    >>> [s.name for s in select(family="mlp", split="test")]
    """
    def matches(scenario: Scenario) -> bool:
        return all(want(getattr(scenario, key)) if callable(want) else getattr(scenario, key) == want
                   for key, want in criteria.items())
    return [s for s in SCENARIOS.values() if matches(s)]
