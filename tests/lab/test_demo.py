"""`gradient-doctor demo`: runs end to end and shows what it claims, on a short budget."""

from __future__ import annotations

import io

import numpy as np
import torch
from rich.console import Console
from torch import nn

import gradient_doctor as gd
from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.demo import run_demo


def test_demo_diagnoses_treats_and_retrains_the_sigmoid_mlp(tmp_path):
    out = io.StringIO()
    demo = run_demo(steps=150, out=str(tmp_path), seed=0, console=Console(file=out, width=120))
    text = out.getvalue()
    for stage in ("1. gd.checkup before training", "3. run.diagnose() from the record", "4. gd.treat",
                  "5. same budget", "6. reports"):
        assert stage in text
    assert "critical vanishing_gradient" in text
    assert any(f.kind == "vanishing_gradient" for f in demo.diagnosis.findings)
    for f in demo.diagnosis.findings + demo.treatment.before.findings:  # on_finding=print: one short line each
        assert len(str(f)) <= 300 and "\n" not in str(f)
    assert demo.treatment.applied and demo.treatment.after.healthy
    assert not any(isinstance(m, nn.Sigmoid) for m in demo.treatment.model.modules())

    for result in (demo.untreated, demo.treated):  # the printed ratios are the record's, recomputed with numpy
        run = gd.load(result.log_dir)
        linear = [i for i, info in enumerate(run.layer_details) if info.kind == "Linear"]
        grads = run.history("grad_norm")
        np.testing.assert_allclose(result.gradient_ratio, np.nanmedian(grads[:, linear[0]] / grads[:, linear[-2]]))
    assert demo.untreated.gradient_ratio < 1e-4 < 1e-1 < demo.treated.gradient_ratio

    data = mnist1d()  # the accuracies are the trained models' own, recomputed in plain torch
    with torch.no_grad():
        accuracy = (demo.treatment.model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert accuracy == demo.treated.accuracy
    assert demo.treated.accuracy > demo.untreated.accuracy + 0.1
    for path in demo.reports:
        assert path.read_text().startswith("<!DOCTYPE html>")


def test_demo_writes_into_gradient_doctor_demo_replaces_it_on_a_rerun_and_ends_with_the_report_paths(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for steps in (30, 20):  # the second run replaces the first: no "log_dir already holds a run record"
        out = io.StringIO()
        demo = run_demo(steps=steps, seed=0, console=Console(file=out, width=100))  # a file: not a terminal
    folder = tmp_path / "gradient-doctor-demo"
    assert {p.name for p in folder.glob("*.html")} == {"untreated.html", "treated.html", "treatment.html"}
    for name in ("untreated", "treated"):
        np.testing.assert_array_equal(gd.load(folder / name).steps, np.arange(20))  # only the re-run's steps
    lines = out.getvalue().rstrip().splitlines()
    assert [line.strip() for line in lines[-3:]] == [f"gradient-doctor-demo/{n}.html"
                                                      for n in ("untreated", "treated", "treatment")]
    assert [p.resolve() for p in demo.reports] == [(folder / f"{n}.html").resolve()
                                                   for n in ("untreated", "treated", "treatment")]
    progress = [line for line in lines if "training the sigmoid MLP: step" in line]
    assert [line.split("step ")[1].split(",")[0] for line in progress] == [f"{s}/20" for s in range(2, 21, 2)]

