"""A watched model can be copied mid-run (`copy.deepcopy` for the best model so far, `torch.save` of the whole
module): the copy is unwatched and copying neither fails nor touches the run's record."""

from __future__ import annotations

import copy
import io

import numpy as np
import torch
from torch import nn

import gradient_doctor as gd


def _run(copies: bool) -> tuple[gd.Run, list[nn.Module]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kept, own_data = [], torch.Generator().manual_seed(1)  # the copies' batches leave the run's draws alone
    with gd.watch(model, opt, activation_every=1, detail_every=1) as run:
        for _ in range(4):
            x = torch.randn(5, 3)
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            run.step(loss=loss)
            if copies:
                best = copy.deepcopy(model)
                buffer = io.BytesIO()
                torch.save(model, buffer)
                buffer.seek(0)
                saved = torch.load(buffer, weights_only=False)
                for twin in (best, saved):  # the copies train on their own
                    twin(torch.randn(7, 3, generator=own_data)).sum().backward()
                kept += [best, saved]
    return run, kept


def test_copies_of_a_watched_model_are_unwatched_and_leave_the_record_as_it_was():
    with_copies, kept = _run(copies=True)
    without, _ = _run(copies=False)
    for metric in ("grad_norm", "act_mean", "dead_frac", "loss"):
        np.testing.assert_array_equal(with_copies.history(metric), without.history(metric))
    for twin in kept:  # after the run too, the copies work
        assert twin(torch.randn(2, 3)).shape == (2, 1)
