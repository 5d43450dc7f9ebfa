"""`Run.layer_histories` (every per-layer series in one read) against `Run.history` one metric at a time, live and
loaded; and `History.trainable()` worked out once per History."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import UnknownName
from gradient_doctor.probe import LAYER_METRICS
from gradient_doctor.record.history import read_history


def _run(log_dir=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = gd.watch(model, optimizer, log_dir=log_dir, detail_every=3, update_every=4, activation_every=5, flush_every=7)
    for _ in range(20):
        optimizer.zero_grad()
        loss = model(torch.randn(8, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        run.step(loss=loss)
    return run


@pytest.mark.parametrize("since", [None, 0, 9, 19, 40])
def test_layer_histories_equal_history_metric_by_metric(tmp_path, since):
    live = _run(tmp_path / "a")
    try:
        together = live.layer_histories(since=since)
        assert list(together) == list(LAYER_METRICS)
        for metric in LAYER_METRICS:
            np.testing.assert_array_equal(together[metric], live.history(metric, since=since))
    finally:
        live.close()
    loaded = gd.load(tmp_path / "a")
    for metric, values in loaded.layer_histories(("grad_norm", "act_std"), since=since).items():
        np.testing.assert_array_equal(values, loaded.history(metric, since=since))
        assert values.shape == (len(loaded.steps_since(since)), len(loaded.layers))


def test_layer_histories_rejects_a_run_level_metric():
    run = _run()
    with pytest.raises(UnknownName, match="loss"):
        run.layer_histories(("grad_norm", "loss"))
    run.close()


def test_trainable_and_the_loss_trend_are_worked_out_once_and_trainable_handed_out_as_a_copy():
    from gradient_doctor.diagnose.run.loss_trend import _trend, loss_trend

    run = _run()
    history = read_history(run, window=12)
    first = history.trainable()
    assert first == history._find_trainable() == [i for i, n in enumerate(history.numel) if n > 0]
    first.append(99)
    history.values["grad_norm"][:] = np.nan  # a later change of the arrays is not seen: read once per History
    assert history.trainable() == first[:-1]
    assert read_history(run, window=12).trainable() == first[:-1]
    fresh = read_history(run, window=12)
    trend = loss_trend(fresh)
    assert trend == _trend(fresh) and trend.points == 12
    fresh.loss[:] = np.nan  # no trend any more, but the one worked out stands
    assert loss_trend(fresh) is trend and _trend(fresh) is None
    run.close()
