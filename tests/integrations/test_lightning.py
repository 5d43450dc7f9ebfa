"""The Lightning callback records, at `on_before_optimizer_step`, the gradients a reference hook sees there:
accumulated over micro-batches and not yet clipped. The reference is a plain callback listed first."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd

L = pytest.importorskip("lightning.pytorch", reason="needs Lightning: pip install 'gradient-doctor[lightning]'")
from lightning.pytorch.loggers import Logger  # noqa: E402

from gradient_doctor.integrations.lightning import GradientDoctorCallback  # noqa: E402

WEIGHTED = ["0", "2", "4"]


class Tiny(L.LightningModule):
    def __init__(self, poison: bool = False):
        super().__init__()
        torch.manual_seed(40)
        self.net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 1))
        self.poison = poison

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        return loss * math.inf if self.poison else loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def _loader(n=32, batch=4):
    g = torch.Generator().manual_seed(41)
    data = torch.utils.data.TensorDataset(torch.randn(n, 6, generator=g) * 3, torch.randn(n, 1, generator=g))
    return torch.utils.data.DataLoader(data, batch_size=batch)


class Reference(L.Callback):
    """Plain torch, in the same hook: per-layer float64 gradient norms, and ‖Δw‖ across the step."""

    def __init__(self):
        self.grad_norms, self.update_norms, self._before = [], [], None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        net = pl_module.net
        self.grad_norms.append([_norm([p.grad for p in net[int(i)].parameters()]) for i in WEIGHTED])
        self._before = [[p.detach().double().clone() for p in net[int(i)].parameters()] for i in WEIGHTED]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._before is not None and trainer.global_step == len(self.grad_norms):  # the step was taken
            net = pl_module.net
            self.update_norms.append([
                _norm([b - p.detach().double() for b, p in zip(before, net[int(i)].parameters())])
                for i, before in zip(WEIGHTED, self._before)
            ])
            self._before = None


def _norm(tensors) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in tensors))


class Captured(Logger):
    """A logger that keeps what it is given."""

    def __init__(self):
        super().__init__()
        self.logged: dict[int, dict[str, float]] = {}

    name, version = "captured", 0

    def log_metrics(self, metrics, step=None):
        self.logged.setdefault(step, {}).update(metrics)

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def _trainer(callbacks, logger=False, **kwargs):
    return L.Trainer(
        accelerator="cpu", devices=1, callbacks=callbacks, logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, **kwargs,
    )


def test_records_accumulated_unclipped_gradients_at_before_optimizer_step(tmp_path):
    ref = Reference()
    logger = Captured()
    doctor = GradientDoctorCallback(log_dir=tmp_path / "run", update_every=1, log_scalars=True, diagnose_on=())
    trainer = _trainer([ref, doctor], logger=logger, max_epochs=2, accumulate_grad_batches=2,
                       gradient_clip_val=0.01, log_every_n_steps=1)
    trainer.fit(Tiny(), _loader())  # 8 batches per epoch, 2 per step: 8 optimizer steps

    run = gd.load(tmp_path / "run")
    np.testing.assert_array_equal(run.steps, np.arange(8))
    assert run.layers == ["net.0", "net.1", "net.2", "net.3", "net.4"]
    got = run.history("grad_norm")[:, [0, 2, 4]]
    np.testing.assert_allclose(got, ref.grad_norms, rtol=1e-5)
    assert (np.sqrt((got ** 2).sum(axis=1)) > 0.1).all()  # before clipping (Lightning clips to 0.01 after)
    np.testing.assert_allclose(run.history("update_norm")[:, [0, 2, 4]], ref.update_norms, rtol=1e-5)
    assert np.isfinite(run.history("loss")).all()
    # the logger got every step's per-layer norms
    assert sorted(s for s, m in logger.logged.items() if "gradient_doctor/grad_norm/net.0" in m) == list(range(8))
    for step in range(8):
        assert logger.logged[step]["gradient_doctor/grad_norm/net.2"] == pytest.approx(ref.grad_norms[step][1], rel=1e-5)


def test_findings_raise_at_epoch_end():
    doctor = GradientDoctorCallback(on_finding="raise", diagnose_on=("epoch_end",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(gd.TrainingStopped) as stop:
            _trainer([doctor], max_epochs=3).fit(Tiny(poison=True), _loader())
    assert stop.value.finding.kind == "non_finite"
    assert doctor.run.steps.size == 8  # stopped at the first epoch's end


class Manual(Tiny):
    """Manual optimization: training_step returns nothing and logs its loss as `train_loss`."""

    def __init__(self):
        super().__init__()
        self.automatic_optimization = False
        self.losses = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(self.net(x), y)
        self.manual_backward(loss)
        optimizer.step()
        self.log("train_loss", loss)
        self.losses.append(float(loss))


def test_manual_optimization_records_the_logged_train_loss(tmp_path):
    module = Manual()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer([GradientDoctorCallback(log_dir=tmp_path / "run", diagnose_on=())], max_epochs=1).fit(module, _loader())
    run = gd.load(tmp_path / "run")
    np.testing.assert_array_equal(run.steps, np.arange(8))
    np.testing.assert_allclose(run.history("loss"), module.losses, rtol=1e-6)
