"""`gradient-doctor lab`: --out, the help text, several experiments, a line per configuration off a terminal."""

from __future__ import annotations

import json

import pytest

from gradient_doctor.cli.main import build_parser, main


def test_help_states_the_default_out_and_examples():
    lab = build_parser()._subparsers._group_actions[0].choices["lab"]
    text = lab.format_help()
    assert "(default: ./lab-results/)" in text and "examples:" in text and "residual" in text
    options = [a for a in lab._actions if a.option_strings and a.dest != "help"]
    assert options and all(a.help for a in options)


def test_writes_into_out_with_a_line_per_configuration(tmp_path, capsys):
    assert main(["lab", "chain-rule", "--quick", "--out", str(tmp_path / "r")]) == 0
    saved = json.loads((tmp_path / "r" / "chain-rule.json").read_text())
    assert saved["meta"]["quick"] is True and len(saved["rows"]) == 6
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("lab chain-rule: finished")]
    assert len(lines) == 6  # one per net (2 activations x 3 seeds): stdout is not a terminal here


def test_default_out_is_lab_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["lab", "chain-rule"]) == 0
    assert (tmp_path / "lab-results" / "chain-rule.md").exists()


@pytest.mark.parametrize("names", [["nope"], ["chain-rule", "he2016"]])
def test_unknown_experiment_is_an_error(names, capsys):
    assert main(["lab", *names]) == 2
    assert "unknown experiment" in capsys.readouterr().err
