"""The callbacks' shared step bookkeeping: under gradient accumulation Lightning's step loss is the mean of the
micro-batch losses `training_step` returned; an optimizer step a GradScaler skips is recorded as `skipped`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gradient_doctor.integrations._session import Session
from tests.test_watch import make_mlp, mlp_batch

L = pytest.importorskip("lightning.pytorch", reason="needs Lightning: pip install 'gradient-doctor[lightning]'")
from gradient_doctor.integrations.lightning import GradientDoctorCallback  # noqa: E402
from tests.integrations.test_lightning import Tiny, _loader, _trainer  # noqa: E402


class Logged(Tiny):
    """Keeps each training_step's loss, as plain floats."""

    def __init__(self):
        super().__init__()
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.losses.append(float(loss))
        return loss


def test_lightning_step_loss_is_the_mean_of_the_accumulated_micro_batch_losses():
    module = Logged()
    doctor = GradientDoctorCallback(diagnose_on=())
    _trainer([doctor], max_epochs=1, accumulate_grad_batches=3).fit(module, _loader(n=36))  # 9 batches, 3 steps
    want = np.asarray(module.losses).reshape(3, 3).mean(axis=1)
    np.testing.assert_array_equal(doctor.run.steps, np.arange(3))
    np.testing.assert_allclose(doctor.run.history("loss"), want, rtol=1e-6)


POISONED = {2, 3}  # iterations whose loss is inf: the scaler finds inf gradients and skips the step


def test_a_step_the_grad_scaler_skips_is_recorded_as_skipped():
    """A plain loop driving the session as the Lightning callback does (on_before_optimizer_step after unscale)."""
    model = make_mlp(seed=21)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    taken = []  # the iterations whose optimizer step really ran (plain torch's own hook)
    opt.register_step_post_hook(lambda *_: taken.append(iteration))
    losses = []
    session = Session(None, (), "warn", {})
    session.start(model, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for iteration in range(6):
            x, y = mlp_batch(iteration)
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y) * (math.inf if iteration in POISONED else 1.0)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            session.gradients_ready()
            scaler.step(opt)
            scaler.update()
            session.batch_end(loss)
            losses.append(float(loss))
    session.close()
    run = session.run
    assert taken == [i for i in range(6) if i not in POISONED]  # the scaler really skipped those two
    np.testing.assert_array_equal(run.steps, np.arange(len(taken)))
    skipped = run.history("skipped")
    # the step after the skipped iterations records how many were skipped just before it
    after = taken.index(max(POISONED) + 1)
    assert skipped[after] == len(POISONED)
    assert np.isnan(np.delete(skipped, after)).all()
    np.testing.assert_allclose(run.history("loss"), [losses[i] for i in taken], rtol=1e-6)
