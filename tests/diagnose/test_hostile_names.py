"""Module names are text, never markup: a layer named `x[/b]` prints (issue 18, item 10)."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console
from torch import nn

import gradient_doctor as gd

NAME = "x[/b]"


class Hostile(nn.Module):
    def __init__(self):
        super().__init__()
        self.add_module(NAME, nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(8, 8), nn.Sigmoid())]))

    def forward(self, x):
        return getattr(self, NAME)(x)


def _deep_sigmoid() -> nn.Module:
    torch.manual_seed(0)
    return Hostile()


def _rich(renderable) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(renderable)
    return buffer.getvalue()


def test_a_checkup_and_a_treatment_of_layers_named_like_markup_print():
    model, x = _deep_sigmoid(), torch.randn(16, 8)
    diagnosis = gd.checkup(model, x)
    assert not diagnosis.healthy
    for text in (str(diagnosis), _rich(diagnosis)):
        assert f"{NAME}.0" in text and "vanishing_gradient" in text
    treatment = gd.treat(model, ["swap_activation:relu"], inputs=x)
    for text in (str(treatment), _rich(treatment)):
        assert "swap_activation:relu" in text and "treatment" in text


def test_a_run_of_layers_named_like_markup_prints_its_summary_and_diagnosis():
    model = _deep_sigmoid()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        for _ in range(3):
            opt.zero_grad()
            loss = model(torch.randn(4, 8)).pow(2).mean()
            loss.backward()
            opt.step()
            run.step(loss=loss)
    assert f"{NAME}.0" in _rich(run.summary()) + str(run.diagnose()) + _rich(run.diagnose())


def test_max_applied_must_not_be_negative():
    with pytest.raises(gd.InvalidValue, match="max_applied must be a non-negative int; got -1"):
        gd.treat(_deep_sigmoid(), ["he_init"], inputs=torch.randn(4, 8), max_applied=-1)
