"""gd.autotrain on a model nobody here wrote: a transformers GPT-2 (config, random weights) with its own loss through
step_fn, past the first check, trains bit for bit as the plain torch loop of benchmarks/real_autotrain.py."""

from __future__ import annotations

import warnings

import pytest
import torch

pytest.importorskip("transformers")

from benchmarks.real.controls import CONTROLS, optimizer_for  # noqa: E402
from benchmarks.real_autotrain import compare  # noqa: E402


def test_a_healthy_gpt2_is_left_alone_and_trains_exactly_as_plain_torch():
    control = CONTROLS["gpt2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = compare("gpt2", control, steps=31)  # the first check is at step 30
        torch.manual_seed(0)
        model = control.build()
        optimizer = optimizer_for(control, model)
        losses = []
        for step in range(31):  # plain torch, written out here as well
            optimizer.zero_grad(set_to_none=True)
            loss = control.loss(model, *control.batch(step))
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    assert not row["acted"] and row["bit_identical"], row["rounds"]
    assert row["autotrain_end"] == row["plain_end"] == pytest.approx(sum(losses[-10:]) / 10, abs=1e-4)
