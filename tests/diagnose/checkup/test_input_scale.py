"""checkup's input_scale rule: the first weight layer's input far from unit scale, fixed by normalize_inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import gradient_doctor as gd


def _tanh_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def _kinds(diagnosis) -> set[str]:
    return {f.kind for f in diagnosis.findings if f.severity != "info"}


@pytest.mark.parametrize("scale, offset", [(255.0, 0.0), (1.0, 50.0), (1e-3, 0.0)])
def test_off_scale_inputs_are_found_with_their_rms(scale, offset):
    torch.manual_seed(1)
    x = torch.rand(128, 64) * scale + offset
    (finding,) = [f for f in gd.checkup(_tanh_net(), x).findings if f.kind == "input_scale"]
    assert finding.evidence["input_rms"] == pytest.approx(math.sqrt(float(x.double().square().mean())), rel=1e-5)  # 6 digits kept
    assert finding.remedies == ["normalize_inputs"] and finding.layers == ["0"]


@pytest.mark.parametrize("make_inputs", [lambda: torch.randn(128, 64), lambda: torch.rand(128, 64),
                                         lambda: 5 * torch.randn(128, 64)])
def test_unit_scale_inputs_and_images_in_0_1_are_not_flagged(make_inputs):
    torch.manual_seed(2)
    assert "input_scale" not in _kinds(gd.checkup(_tanh_net(), make_inputs()))


def test_normalisation_first_and_token_ids_are_not_judged():
    torch.manual_seed(3)
    normed = nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 10))
    assert "input_scale" not in _kinds(gd.checkup(normed, 255 * torch.rand(32, 64)))
    tokens = nn.Sequential(nn.Embedding(1000, 16), nn.Flatten(), nn.Linear(80, 4))
    assert "input_scale" not in _kinds(gd.checkup(tokens, torch.randint(0, 1000, (32, 5))))


def test_saturation_from_the_inputs_ranks_normalize_inputs_first_and_treat_applies_it():
    torch.manual_seed(4)
    x = 255 * torch.rand(256, 64)
    diagnosis = gd.checkup(_tanh_net(), x)
    (saturated,) = [f for f in diagnosis.findings if f.kind == "saturated_activation"]
    assert saturated.remedies[0] == "normalize_inputs"
    treatment = gd.treat(_tanh_net(), diagnosis, inputs=x)
    assert "normalize_inputs" in treatment.applied and treatment.after.healthy
    # the treated model standardises its inputs itself: its first Linear now sees unit-scale inputs
    standardised = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    linear = next(m for m in treatment.model.modules() if isinstance(m, nn.Linear))
    seen = []
    handle = linear.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    with torch.no_grad():
        treatment.model(x)
    handle.remove()
    # lsuv/xavier may have run first; the standardiser is in front of the first Linear either way
    torch.testing.assert_close(seen[0], standardised, rtol=1e-4, atol=1e-4)
