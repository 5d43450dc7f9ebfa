"""Every remedy a finding ranks comes with one line that cites the numbers this finding measured: checked against
the same numbers computed independently in plain torch/numpy, formatted as the line formats them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

import gradient_doctor as gd
from gradient_doctor.diagnose.rationale import rationale
from gradient_doctor.diagnose.render import finding_block
from tests.diagnose.run.test_diagnose import data, finding, mlp, replay, train
from tests.diagnose.run.test_rules import theil_sen


def assert_complete(diag: gd.Diagnosis) -> None:
    """Every finding explains each of its remedies, in their order, with a line that ends on the remedy's name or
    goes on from it with a reason; and the lines survive JSON."""
    for f in diag.findings:
        assert list(f.rationale) == f.remedies, (f.kind, f.rationale, f.remedies)
        for name, line in f.rationale.items():
            assert line.endswith(f"→ {name}") or f"→ {name}: " in line, line
        assert json.loads(json.dumps(f.to_dict()))["rationale"] == f.rationale


def saturated(h: torch.Tensor) -> float:
    """Share of sigmoid outputs within 1 % of the range from a bound."""
    return ((h <= 0.01) | (h >= 0.99)).double().mean().item()


def test_checkup_saturation_cites_the_saturated_fraction():
    torch.manual_seed(0)
    x = torch.randn(64, 16) * 100
    model = mlp(3, nn.Sigmoid)
    diag = gd.checkup(model, x)
    assert_complete(diag)
    f = finding(diag, "saturated_activation")
    with torch.no_grad():
        first = saturated(model[1](model[0](x)))
    assert f.layers[0] == "1"
    for name in f.remedies:
        assert f"{first:.0%} of layer 1's Sigmoid outputs saturated" in f.rationale[name]


def test_checkup_dead_units_cite_the_dead_fraction():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    model = mlp(4, nn.ReLU, bias=-1.5)
    diag = gd.checkup(model, x)
    assert_complete(diag)
    f = finding(diag, "dead_units")
    with torch.no_grad():
        h, fractions = x, {}
        for j, module in enumerate(model):
            h = module(h)
            if isinstance(module, nn.ReLU):
                fractions[str(j)] = (h.amax(dim=0) == 0).double().mean().item()
    worst = max((n for n in f.layers), key=fractions.get)
    assert fractions[worst] >= 0.7
    assert f.rationale["he_init"].startswith(f"{fractions[worst]:.0%} of layer {worst}'s units zero on every sample")


def test_run_saturation_cites_the_median_fraction_and_why_the_inputs():
    model = mlp(3, nn.Sigmoid)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 40, x_scale=100.0).diagnose()
    assert_complete(diag)
    f = finding(diag, "saturated_activation")
    ref = mlp(3, nn.Sigmoid)
    fraction = np.median(replay(ref, torch.optim.SGD(ref.parameters(), lr=0.01), 40, x_scale=100.0)["saturated"][:, 1])
    line = f.rationale["normalize_inputs"]
    assert line.startswith(f"{fraction:.0%} of layer 1's Sigmoid outputs saturated (median over 40 steps)")
    assert line.endswith("→ normalize_inputs: layer 1 (the first activation) is saturated from its first recorded "
                         "step, layer 3 is not")


def test_run_plateau_cites_the_drift_and_noise_and_the_weight_movement():
    model = mlp(4, nn.ReLU, he=True)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=1e-7), 100).diagnose()
    assert_complete(diag)
    f = finding(diag, "loss_plateau")
    ref = mlp(4, nn.ReLU, he=True)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=1e-7), 100)
    drift, noise = theil_sen(r["loss"])
    linear = [0, 2, 4, 6]
    movement = max(np.median(r["update"][:, j] / r["weight"][:, j]) * 100 for j in linear)
    line = f.rationale["increase_lr"]
    assert f"the loss moved {drift:+.3g} over 100 steps against a noise of {noise:.3g}" in line
    assert f"relative updates add up to {movement:.2g}× its weight norm" in line


def test_run_vanishing_cites_the_lowest_layers_ratios():
    model = mlp(10, nn.Sigmoid)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60).diagnose()
    assert_complete(diag)
    f = finding(diag, "vanishing_gradient")
    ref = mlp(10, nn.Sigmoid)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1), 60)
    linear = [j for j, m in enumerate(ref) if isinstance(m, nn.Linear)]
    numel = np.array([sum(p.numel() for p in ref[j].parameters()) for j in linear])
    rms = np.median(r["grad"][:, linear], axis=0) / np.sqrt(numel)
    relative = np.median(r["update"][:, linear] / r["weight"][:, linear], axis=0)
    upper = slice(len(linear) // 2, None)
    grad_ratio, update_ratio = rms[0] / np.median(rms[upper]), relative[0] / np.median(relative[upper])
    assert f.layers[0] == "0"
    assert f"layer 0 gets {grad_ratio:.2g} of the upper layers' gradient (RMS) and moves {update_ratio:.2g} as much" \
        in f.rationale[f.remedies[0]]
    assert f.rationale["swap_activation:relu"].endswith(
        "→ swap_activation:relu: the recorded activations are sigmoid/tanh-like, whose derivative (at most 0.25 for a "
        "sigmoid) shrinks the gradient at every layer, saturated or not")


def test_run_vanishing_does_not_call_unsaturated_sigmoids_saturating():
    """The demo's contradiction: "activations are mostly saturating" beside 0 % saturation for every sigmoid."""
    model = mlp(10, nn.Sigmoid)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60).diagnose()
    ref = mlp(10, nn.Sigmoid)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1), 60)
    assert np.nanmax(r["saturated"]) < 0.5  # plain torch: no sigmoid is mostly saturated
    assert "saturated_activation" not in [f.kind for f in diag.findings]
    assert all("mostly saturating" not in line for f in diag.findings for line in f.rationale.values())


def test_the_first_remedys_rationale_is_rendered():
    torch.manual_seed(0)
    diag = gd.checkup(mlp(3, nn.Sigmoid), torch.randn(64, 16) * 100)
    f = diag.findings[0]
    console = Console(record=True, width=400)
    console.print(finding_block(f, diag.layer_kinds))
    text = " ".join(console.export_text().split())
    measured, _, why = f.rationale[f.remedies[0]].partition(f" → {f.remedies[0]}")
    assert measured in f.summary  # the summary states the measured clause once; the why line adds what the remedy rests on
    assert text.count(measured) == 1
    why = why.lstrip(": ")
    assert text.count("why: ") == (1 if why else 0)  # a why line only when it adds to the summary
    assert not why or f"why: {why}" in text


def test_a_rationale_explains_only_ranked_remedies():
    with pytest.raises(ValueError, match=r"may only explain the ranked remedies \['he_init'\]; got \['xavier_init'\]"):
        gd.Finding("dead_units", "warning", "depth", ["1"], {}, ["he_init"], rationale={"xavier_init": "x"})
    stray = r"`why` names remedies that are not ranked \['he_init'\]; got \['lsuv_init'\]"
    with pytest.raises(ValueError, match=stray):
        rationale(["he_init"], "80% dead", {"lsuv_init": "because"})
    assert rationale(["he_init", "lsuv_init"], "80% dead", {"lsuv_init": "no activation recorded"}) == {
        "he_init": "80% dead → he_init", "lsuv_init": "80% dead → lsuv_init: no activation recorded"}


def test_every_finding_of_a_broken_run_explains_every_remedy():
    """A run that diverges to inf/NaN (exploding, non_finite and more): each finding's lines are complete."""
    def lr(step):
        return 0.01 if step < 30 else 0.3

    model = mlp(4, nn.ReLU, he=True)
    diag = train(model, torch.optim.SGD(model.parameters(), lr=0.01), 60, lr=lr).diagnose()
    assert {"exploding_gradient", "non_finite"} <= {f.kind for f in diag.findings}
    assert_complete(diag)
    step = finding(diag, "non_finite").evidence["first_step"]
    assert finding(diag, "non_finite").rationale["clip_grad_norm"].startswith(f"inf/NaN first appeared at step {step}")
    x, _ = data()
    assert_complete(gd.checkup(mlp(10, nn.Sigmoid), x[:64]))
