"""TensorBoard export, after the fact and live, read back with tensorboard's own EventAccumulator and compared to
the plain-torch replay of tests/test_report.py."""

from __future__ import annotations

import math
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gradient_doctor as gd
from tests.test_report import DETAIL, STEPS, train


def read(logdir) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def check(events: EventAccumulator, trained) -> None:
    for layer in trained.weighted:
        grad = events.Scalars(f"grad_norm/{layer}")
        assert [e.step for e in grad] == list(range(STEPS))
        assert [e.value for e in grad] == pytest.approx([trained.grad[s][layer] for s in range(STEPS)], rel=1e-5)
        ratio = events.Scalars(f"update_ratio/{layer}")  # only the update steps: NaN steps are skipped
        assert [e.step for e in ratio] == sorted(trained.ratio)
        assert [e.value for e in ratio] == pytest.approx([trained.ratio[s][layer] for s in sorted(trained.ratio)],
                                                        rel=1e-4)
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([trained.loss[s] for s in range(STEPS)], rel=1e-6)
    assert "saturated_frac/1" in events.Tags()["scalars"] and "grad_norm/1" not in events.Tags()["scalars"]
    histograms = events.Histograms("grad_norm_log10")
    assert [h.step for h in histograms] == list(range(0, STEPS, DETAIL))
    for h in histograms:
        logs = [math.log10(trained.grad[h.step][layer]) for layer in trained.weighted]
        assert h.histogram_value.num == len(logs)
        assert h.histogram_value.min == pytest.approx(min(logs), abs=1e-6)
        assert h.histogram_value.max == pytest.approx(max(logs), abs=1e-6)
        assert h.histogram_value.sum == pytest.approx(sum(logs), rel=1e-6)


def test_export_reads_back_as_the_recorded_numbers(tmp_path):
    trained = train(tmp_path)
    logdir = gd.to_tensorboard(gd.load(trained.run.log_dir), tmp_path / "tb")
    check(read(logdir), trained)


def test_watch_writes_the_same_events_live(tmp_path):
    trained = train(tmp_path, tensorboard=tmp_path / "tb", flush_every=7)  # several flushes, one at close
    check(read(tmp_path / "tb"), trained)


def test_missing_tensorboard_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'gradient-doctor\[tensorboard\]'"):
        gd.to_tensorboard(None, tmp_path / "tb")
    assert not (tmp_path / "tb").exists()
