"""The HTML report a person reads: evidence as tables in forward order, before/after budgets on one scale, a legend
that names every line, a sentence where a chart is flat for a reason, ridges drawn where the histogram is, and
labels that are not cut."""

from __future__ import annotations

import html
import re

import numpy as np
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.report.html import render
from tests.diagnose.run.test_diagnose import finding, mlp, replay, train
from tests.report.test_report import chart


def sigmoid_run():
    model = mlp(10, nn.Sigmoid)
    return train(model, torch.optim.SGD(model.parameters(), lr=0.1), 60)


def test_a_finding_card_shows_its_evidence_as_a_table_in_forward_order():
    run = sigmoid_run()
    f = finding(run.diagnose(), "vanishing_gradient")
    page = render(run)
    card = re.search(r'<article class="card critical" data-kind="vanishing_gradient".*?</article>', page, re.S).group(0)
    table = re.search(r'<table class="numbers" data-table="evidence">(.*?)</table>', card, re.S).group(1)
    rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)] for row in re.findall(r"<tr>(.*?)</tr>",
                                                                                                   table)][1:]
    assert [row[0] for row in rows] == sorted(f.layers, key=int)  # forward order
    assert all(row[1] == "Linear" for row in rows)  # each with its type
    ref = mlp(10, nn.Sigmoid)
    r = replay(ref, torch.optim.SGD(ref.parameters(), lr=0.1), 60)  # the ratios, in plain torch
    linear = [j for j, m in enumerate(ref) if isinstance(m, nn.Linear)]
    numel = np.array([sum(p.numel() for p in ref[j].parameters()) for j in linear])
    rms = np.median(r["grad"][:, linear], axis=0) / np.sqrt(numel)
    reference = np.median(rms[len(linear) // 2:])
    for row in rows:
        np.testing.assert_allclose(float(row[2]), rms[linear.index(int(row[0]))] / reference, rtol=2e-3)
    assert "{" not in card and "None" not in card and "critical below" not in card


def test_before_and_after_budgets_share_one_scale():
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(16, 16), nn.Sigmoid())], nn.Linear(16, 1))
    x = torch.randn(64, 16)
    page = render(gd.treat(model, gd.checkup(model, x), inputs=x))
    ticks = {}
    for side in ("before", "after"):
        figure = chart(page, f"budget_{side}")
        ticks[side] = re.findall(r'text-anchor="middle"[^>]*>([^<]+)</text>', figure)
    assert ticks["before"] and ticks["before"] == ticks["after"]
    assert "not attributed (skips, ops)" in page and "…" not in chart(page, "budget_before")


def test_the_saturation_legend_names_every_layer_and_a_flat_chart_says_why():
    run = sigmoid_run()
    saturated = run.history("saturated_frac")
    layers = [name for j, name in enumerate(run.layers) if np.isfinite(saturated[:, j]).any()]
    assert len(layers) == 9 and np.nanmax(saturated) == 0  # nine sigmoids, none ever saturated (the record)
    page = render(run)
    figure = chart(page, "saturation")
    legend = re.findall(r'<rect x="[^"]+" y="[^"]+" width="10" height="10" fill="[^"]+"/><text[^>]*>([^<]+)</text>',
                        figure)
    assert legend == layers
    section = re.search(r'<section id="activations">.*?</section>', page, re.S).group(0)
    assert "so every line lies at 0" in section


def test_ridges_are_light_fills_under_outlines_without_their_baselines():
    """Overlapping filled ridges turned brown: each is now a light fill without a stroke, and an outline over its
    bins only (no line along the baseline, where every step's would coincide)."""
    run = sigmoid_run()
    figure = chart(render(run), "ridge")
    ridges = re.findall(r'<polygon class="ridge"[^>]*points="([^"]+)" fill="[^"]+" fill-opacity="([^"]+)" '
                        r'stroke="none">.*?</polygon><polyline points="([^"]+)"', figure)
    assert ridges
    for polygon, opacity, outline in ridges:
        assert float(opacity) <= 0.15
        top = polygon.split()[1:-1]
        line = outline.split()
        start = top.index(line[0])
        assert line == top[start: start + len(line)]  # a stretch of the polygon's top edge
        baseline = polygon.split()[0].split(",")[1]
        assert line[0].split(",")[1] != baseline and line[-1].split(",")[1] != baseline  # from filled bin to filled bin
