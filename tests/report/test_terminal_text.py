"""What a person reads in a terminal: `print(run.summary())`, `str(finding)`, `print(diag)` and `print(treatment)`,
as wide as the terminal (100 columns off it), each against what plain torch measured."""

from __future__ import annotations

import math
import os
import re

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from benchmarks.scenarios import SCENARIOS
from gradient_doctor import _console
from gradient_doctor.diagnose.finding import MAX_LINE
from gradient_doctor.diagnose.render import TREAT_CALL, to_text
from gradient_doctor.treat.render import to_text as treatment_text


def sigmoid_mlp(depth: int = 10, width: int = 32) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(16 if i == 0 else width, width), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(width, 4))


def own_grad_norm(module: nn.Module) -> float:
    return math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in module.parameters(recurse=False)))


def test_print_run_summary_shows_the_table_with_the_latest_gradient_norms(capsys):
    model = sigmoid_mlp(4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 16), torch.randint(0, 4, (64,))
    with gd.watch(model, optimizer) as run:
        for _ in range(5):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    print(run.summary())
    out = capsys.readouterr().out
    assert "<rich.table" not in out and "5 steps" in out
    rows = {line.split()[0]: line for line in out.splitlines() if re.match(r"^\s+\d+\s+(Linear|Sigmoid)", line)}
    linear = [str(j) for j, m in enumerate(model) if isinstance(m, nn.Linear)]
    assert sorted(rows, key=int) == [str(j) for j in range(len(model))]
    for name in linear:  # the grads left after the last step are that step's, in plain torch
        assert f"{own_grad_norm(model[int(name)]):.2e}" in rows[name]


def test_plain_text_follows_the_terminal_and_is_100_columns_off_it(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda *args: (_ for _ in ()).throw(OSError("not a terminal")))
    assert _console.text_width() == 100
    monkeypatch.setenv("COLUMNS", "72")
    assert _console.text_width() == 72
    diag = gd.checkup(sigmoid_mlp(), torch.randn(64, 16))
    for width in (60, 100):
        lines = to_text(diag, width=width).splitlines()
        assert max(len(line) for line in lines) <= width
        finding = lines.index(next(line for line in lines if line.startswith("CRITICAL")))
        body = lines[finding + 1: lines.index("", finding + 1) if "" in lines[finding + 1:] else None]
        assert body and all(line.startswith("  ") for line in body)  # hanging indent: nothing wraps to column 0


def zoo_batch(name: str):
    setup = SCENARIOS[name].make()
    inputs, targets = setup.train
    return setup, inputs[: setup.batch_size], targets[: setup.batch_size]


ZOO = [s.name for s in SCENARIOS.values() if s.family in ("mlp", "rnn", "cnn") and s.label != "healthy"]


@pytest.mark.parametrize("name", ZOO[::2])
def test_str_of_a_zoo_models_findings_is_one_line_of_at_most_300_characters(name):
    setup, x, y = zoo_batch(name)
    diag = gd.checkup(setup.model, x, y, setup.loss_fn)
    for f in diag.findings:
        line = str(f)
        assert len(line) <= MAX_LINE and "\n" not in line
        assert line.startswith(f"{f.severity.upper()} {f.kind}")
        assert not f.remedies or line.endswith(f"→ {f.remedies[0]}")


def test_str_of_a_finding_names_its_key_number_and_layers_in_forward_order():
    diag = gd.checkup(sigmoid_mlp(), torch.randn(64, 16))
    f = next(f for f in diag.findings if f.kind == "vanishing_gradient")
    line = str(f)
    assert f"ratio {f.evidence['ratio']:.2g}" in line
    shown = [int(n) for n in re.findall(r"\d+", line.split(" at ", 1)[1].split(":")[0].split("(")[0])]
    assert shown == sorted(shown) and set(shown) <= {int(n) for n in f.layers}


def test_checkup_text_ends_with_the_treat_call_and_names_layer_types():
    diag = gd.checkup(sigmoid_mlp(), torch.randn(64, 16))
    text = str(diag)
    assert not diag.healthy and text.endswith(TREAT_CALL)
    head = next(line for line in text.splitlines() if line.startswith("CRITICAL vanishing_gradient"))
    assert "Sigmoid" in head  # the module type goes with the Sequential's indices
    custom = to_text(diag, treat_call="gradient-doctor treat m:build --input-shape 64 16")
    assert custom.endswith("gradient-doctor treat m:build --input-shape 64 16")
    torch.manual_seed(0)
    healthy = gd.checkup(nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4)), torch.randn(64, 16))
    assert healthy.healthy and "gd.treat" not in str(healthy)


def test_checkup_evidence_has_no_empty_zero_or_repeated_fields():
    diag = gd.checkup(sigmoid_mlp(), torch.randn(64, 16))
    f = next(f for f in diag.findings if f.kind == "vanishing_gradient")
    text = str(diag).split("CRITICAL")[1]  # the finding (the budget line above also states the ratio)
    assert f.evidence["ratio"] == f.evidence["end_to_end"]  # the same number under two keys: shown once
    assert text.count(f"{f.evidence['ratio']:.3g}") == 1
    assert f.evidence["orders_lost_by_recurrent_layers"] == 0 and "recurrent layers" not in text
    assert "None" not in text and "{" not in text


def test_an_opt_in_remedy_is_shown_as_not_tried_not_rolled_back():
    model = sigmoid_mlp()
    x = torch.randn(64, 16)
    t = gd.treat(model, gd.checkup(model, x), inputs=x)
    assert "reduce_depth" not in t.applied and "reduce_depth" in dict(t.rejected)
    row = next(line for line in treatment_text(t, width=120).splitlines() if line.strip().startswith("reduce_depth"))
    assert "not tried" in row and "rolled back" not in row


def test_summary_bars_span_three_decades_so_close_norms_look_close():
    """Two layers whose gradient norms differ by less than a factor of 2 get nearly equal bars, not one full and one
    nearly empty (the bars start 3 decades below the largest norm)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with gd.watch(model, optimizer) as run:
        optimizer.zero_grad()
        model(torch.randn(32, 8)).pow(2).mean().backward()
        optimizer.step()
    norms = [own_grad_norm(model[j]) for j in range(2)]  # plain torch
    assert max(norms) / min(norms) < 10
    top = math.log10(max(norms))
    expected = [max(1, round((math.log10(n) - (top - 3)) / 3 * 16)) for n in norms]
    text = _console.plain_text(run.summary(), width=100)
    drawn = [next(line for line in text.splitlines() if line.split()[:2] == [str(j), "Linear"]).count("█")
             for j in range(2)]
    assert drawn == expected and min(drawn) >= 16 - 6
