"""Watching a `torch.compile`d model: the record equals eager plain torch's numbers, and watching adds
no graph break and no recompilation (compared with the same compiled model unwatched).

Backend "aot_eager": dynamo's tracing and AOT autograd as in production, without inductor's C++
compile time (inductor gives the same counts; checked by hand, ~30 s on 2 CPUs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

import gradient_doctor as gd
from tests.test_watch import Reference, check_run

LAYERS = ["0", "1", "2", "3", "4"]


def _mlp() -> nn.Sequential:
    torch.manual_seed(30)
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))


def _train(model, compiled, opt, steps=3, run=None):
    g = torch.Generator().manual_seed(31)
    for _ in range(steps):
        x, y = torch.randn(6, 8, generator=g), torch.randn(6, 1, generator=g)
        opt.zero_grad()
        nn.functional.mse_loss(compiled(x), y).backward()
        opt.step()
        if run is not None:
            run.step()


def _compile_counts(watched: bool) -> tuple[int, int, dict]:
    torch._dynamo.reset()
    counters.clear()
    model = _mlp()
    compiled = torch.compile(model, backend="aot_eager")
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    if watched:
        with pytest.warns(RuntimeWarning, match="activation statistics are not measured"):
            run = gd.watch(compiled, opt, detail_every=1, update_every=1)
        with run:
            _train(model, compiled, opt, run=run)
    else:
        run = None
        _train(model, compiled, opt)
    breaks = sum(counters["graph_break"].values())
    return breaks, counters["stats"]["unique_graphs"], run


def test_compiled_model_records_eager_numbers_without_graph_breaks():
    base_breaks, base_graphs, _ = _compile_counts(watched=False)
    breaks, graphs, run = _compile_counts(watched=True)
    assert (breaks, graphs) == (base_breaks, base_graphs) == (0, 1)

    twin = _mlp()  # eager, unwatched: the reference
    opt = torch.optim.Adam(twin.parameters(), lr=0.01)
    ref = Reference(twin, opt)
    _train(twin, twin, opt)
    ref.close()
    check_run(run, ref, LAYERS, atol=1e-9, detail_every=1, update_every=1, activation_every=0)
    assert np.isfinite(run.history("grad_norm")[:, [0, 2, 4]]).all()
