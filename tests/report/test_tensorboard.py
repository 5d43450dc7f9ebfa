"""TensorBoard export, after the fact and live, read back with tensorboard's own EventAccumulator and compared to
the plain-torch replay of tests/report/test_report.py."""

from __future__ import annotations

import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import gradient_doctor as gd
from tests.report.test_report import DETAIL, STEPS, train


def read(logdir) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def check(events: EventAccumulator, trained, layer_every: int = 1) -> None:
    for layer in trained.weighted:
        grad = events.Scalars(f"grad_norm/{layer}")
        assert [e.step for e in grad] == list(range(0, STEPS, layer_every))
        assert [e.value for e in grad] == pytest.approx([trained.grad[e.step][layer] for e in grad], rel=1e-5)
        ratio = events.Scalars(f"update_ratio/{layer}")  # only the update steps: NaN steps are skipped
        assert [e.step for e in ratio] == sorted(trained.ratio)
        assert [e.value for e in ratio] == pytest.approx([trained.ratio[s][layer] for s in sorted(trained.ratio)],
                                                        rel=1e-4)
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([trained.loss[s] for s in range(STEPS)], rel=1e-6)
    assert not any(tag.startswith("nonfinite/") for tag in events.Tags()["scalars"])  # 0 everywhere: not written
    assert "saturated_frac/1" in events.Tags()["scalars"] and "grad_norm/1" not in events.Tags()["scalars"]
    for layer in trained.weighted:  # per-entry gradient histograms; their counts: tests/probe/test_histograms.py
        assert [h.step for h in events.Histograms(f"grad_log10_hist/{layer}")] == list(range(0, STEPS, DETAIL))


def test_export_reads_back_as_the_recorded_numbers(tmp_path):
    trained = train(tmp_path)
    logdir = gd.to_tensorboard(gd.load(trained.run.log_dir), tmp_path / "tb")
    check(read(logdir), trained)


def test_export_accepts_a_log_dir(tmp_path):
    trained = train(tmp_path)
    check(read(gd.to_tensorboard(str(trained.run.log_dir), tmp_path / "tb")), trained)


def test_watch_writes_the_same_events_live_with_layer_norms_at_the_detail_cadence(tmp_path):
    trained = train(tmp_path, tensorboard=tmp_path / "tb", flush_every=7)  # several flushes, one at close
    check(read(tmp_path / "tb"), trained, layer_every=DETAIL)


def events_per_step(logdir, tag: str) -> dict[int, int]:
    """How many `tag` scalars each step has over every events file in `logdir` (no merging, no purging)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    counts: dict[int, int] = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    counts[event.step] = counts.get(event.step, 0) + 1
    return counts


def test_resume_writes_only_the_new_steps(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(2):  # a first session of 6 steps, then a resumed one of 6 more
        with gd.watch(model, opt, log_dir=tmp_path / "run", resume=True, tensorboard=tmp_path / "tb") as run:
            for _ in range(6):
                opt.zero_grad()
                loss = model(torch.randn(8, 4)).pow(2).mean()
                loss.backward()
                opt.step()
                run.step(loss=loss)
    assert events_per_step(tmp_path / "tb", "loss") == {step: 1 for step in range(12)}


def test_a_failing_watch_leaves_no_writer_behind(tmp_path):
    train_once = nn.Linear(2, 1)
    gd.watch(train_once, log_dir=tmp_path / "run").close()
    with pytest.raises(gd.GradientDoctorError, match="already holds a run record"):
        gd.watch(train_once, log_dir=tmp_path / "run", tensorboard=tmp_path / "tb")
    assert not (tmp_path / "tb").exists()
    with pytest.raises(TypeError, match="tensorboard must be a directory"):
        gd.watch(train_once, log_dir=tmp_path / "other", tensorboard=3)
    assert not (tmp_path / "other").exists()


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'gradient-doctor\[tensorboard\]'"):
        gd.to_tensorboard(None, tmp_path / "tb")
    assert not (tmp_path / "tb").exists()
