"""Command-line errors exit 2 (1 means findings) with one clear line on stderr, and outputs are checked before the
work (issue 18, items 3 and 6)."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.cli import main

treat_command = sys.modules["gradient_doctor.cli.treat"]

MODELS = """
from torch import nn

def build():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))

def lm():
    return nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))

def raises():
    raise RuntimeError("no weights here")

def needs(width):
    return nn.Linear(width, 2)
"""


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A mymodels.py in the current directory (a fresh module name per test: imports are cached)."""
    name = f"mymodels_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    yield name
    sys.modules.pop(name, None)


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradient-doctor: error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("args, said", [
    (["--trials", "0"], "trials must be a positive int; got 0"),
    (["--input-shape", "2", "5"], "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    (["--vocab-size", "0"], "expected a positive --vocab-size"),
])
def test_checkup_usage_errors_exit_2_with_one_line(models, capsys, args, said):
    shape = [] if "--input-shape" in args else ["--input-shape", "2", "4"]
    assert main(["checkup", f"{models}:build", *shape, *args]) == 2
    assert said in _error_line(capsys)


@pytest.mark.parametrize("factory, said", [
    ("raises", "raised RuntimeError: no weights here"),
    ("needs", "to be callable with no arguments (missing a required argument: 'width')"),
])
def test_a_factory_that_raises_or_needs_an_argument_exits_2(models, capsys, factory, said):
    assert main(["checkup", f"{models}:{factory}", "--input-shape", "2", "4"]) == 2
    assert said in _error_line(capsys)


def test_checkup_imports_a_module_from_the_current_directory(models, capsys):
    assert main(["checkup", f"{models}:build", "--input-shape", "2", "4"]) == 0  # as `python -m` would find it
    assert "healthy" in capsys.readouterr().out
    assert main(["checkup", f"{models}:lm", "--input-shape", "2", "3", "--vocab-size", "10"]) == 0


def test_checkup_of_an_empty_batch_is_an_error_not_healthy(models, capsys):
    assert main(["checkup", f"{models}:build", "--input-shape", "0", "4"]) == 2
    _error_line(capsys)
    with pytest.raises(gd.CheckupError, match=r"at least one sample.*inputs of shape \(0, 4\)"):
        gd.checkup(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)), torch.randn(0, 4))


def test_treat_checks_its_output_before_the_treatment(models, capsys, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the treatment ran before --out was checked")

    monkeypatch.setattr(treat_command, "treat", never)
    assert main(["treat", f"{models}:build", "--input-shape", "2", "4", "--out", "missing/dir/t.pt"]) == 2
    assert "expected --out to be in an existing directory; missing/dir does not exist" in _error_line(capsys)
    assert main(["treat", f"{models}:build", "--input-shape", "2", "4", "--out", "."]) == 2
    assert "expected --out to name a file" in _error_line(capsys)


@pytest.fixture
def recorded(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=tmp_path / "run") as run:
        for _ in range(3):
            opt.zero_grad()
            loss = model(torch.randn(4, 3)).pow(2).mean()
            loss.backward()
            opt.step()
            run.step(loss=loss)
    return tmp_path / "run"


def test_report_to_a_missing_directory_exits_2_and_writes_nothing(recorded, tmp_path, capsys):
    assert main(["report", str(recorded), "-o", str(tmp_path / "missing" / "dir" / "x.html")]) == 2
    assert "expected -o/--output to be in an existing directory" in _error_line(capsys)
    assert not (tmp_path / "missing").exists()
    assert main(["report", str(recorded), "-o", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)


def test_demo_with_no_steps_exits_2(capsys):
    assert main(["demo", "--steps", "-5"]) == 2
    assert "demo: steps must be a positive int" in _error_line(capsys)
