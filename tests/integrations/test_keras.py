"""The Keras 3 callback (torch backend) records the gradients Keras applies, read by a plain reference callback from the
model's own variables, its losses and metrics, and diagnoses the seeds' deep sigmoid net; the guard, a
LossScaleOptimizer's skipped steps, stop_on and a wrong backend."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import gradient_doctor as gd
from gradient_doctor.cli.main import main

keras = pytest.importorskip("keras", reason="needs Keras 3: pip install 'gradient-doctor[keras]'")
from gradient_doctor.integrations.keras import GradientDoctorCallback  # noqa: E402

WIDTH, DEPTH, BATCH = 16, 10, 16


def dense_net(activation: str, init: str, optimizer=None, loss: str = "binary_crossentropy") -> keras.Model:
    """The seeds' example: DEPTH Dense layers of one activation and init, a sigmoid output, binary cross-entropy."""
    keras.utils.set_random_seed(60)
    model = keras.Sequential(
        [keras.Input((WIDTH,))]
        + [keras.layers.Dense(WIDTH, activation=activation, kernel_initializer=init) for _ in range(DEPTH)]
        + [keras.layers.Dense(1, activation="sigmoid")]
    )
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    return model


def data(n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(61)
    x = rng.standard_normal((n, WIDTH)).astype("float32")
    return x, (x[:, :3].sum(axis=1) > 0).astype("float32")[:, None]


class Reference(keras.callbacks.Callback):
    """Plain torch after each batch: every layer's float64 gradient norm from its variables' `.grad` (Keras zeroes
    them only when the next batch starts), ‖Δw‖ across the batch, and the batch's logs."""

    def __init__(self):
        super().__init__()
        self.grad_norms, self.update_norms, self.logs, self._before = [], [], [], None

    def on_train_batch_begin(self, batch, logs=None):
        self._before = [[v.value.detach().double().clone() for v in layer.trainable_variables] for layer in self.model.layers]

    def on_train_batch_end(self, batch, logs=None):
        layers = self.model.layers
        self.grad_norms.append([_norm([v.value.grad for v in layer.trainable_variables]) for layer in layers])
        self.update_norms.append([_norm([b - v.value.detach().double() for b, v in zip(before, layer.trainable_variables)])
                                  for before, layer in zip(self._before, layers)])
        self.logs.append(dict(logs))


def _norm(tensors) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in tensors if t is not None))


def _fit(model, callbacks, epochs=2, x=None, y=None):
    if x is None:
        x, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)


def test_fit_records_the_gradients_keras_applies(tmp_path):
    model, ref = dense_net("sigmoid", "glorot_uniform"), Reference()
    history = _fit(model, [ref, GradientDoctorCallback(log_dir=tmp_path / "run", update_every=1, activation_every=1,
                                                       diagnose_on=())])
    run = gd.load(tmp_path / "run")
    steps = 2 * 128 // BATCH
    np.testing.assert_array_equal(run.steps, np.arange(steps))
    assert run.layers == [layer.name for layer in model.layers]  # Keras names, forward order
    np.testing.assert_allclose(run.history("grad_norm"), ref.grad_norms, rtol=1e-5)
    np.testing.assert_allclose(run.history("update_norm"), ref.update_norms, rtol=1e-5)
    np.testing.assert_allclose(run.history("accuracy"), [logs["accuracy"] for logs in ref.logs], rtol=1e-6)
    # each step's own loss: per epoch, their mean is the epoch loss Keras reports (equal batches)
    np.testing.assert_allclose(run.history("loss").reshape(2, -1).mean(axis=1), history.history["loss"], rtol=1e-5)
    saturated = run.history("saturated_frac")
    assert np.isfinite(saturated).all() and (saturated >= 0).all()  # sigmoid activation= is read as an activation


def test_sigmoid_net_vanishes_relu_he_net_is_healthy_in_fit_and_checkup(tmp_path):
    x, _ = data(64)
    for activation, init, sick in (("sigmoid", "glorot_uniform", True), ("relu", "he_normal", False)):
        model = dense_net(activation, init)
        checked = gd.checkup(model, torch.from_numpy(x))
        _fit(model, [GradientDoctorCallback(log_dir=tmp_path / activation, diagnose_on=())], epochs=3)
        found = gd.load(tmp_path / activation).diagnose()
        for diagnosis in (checked, found):
            kinds = {f.kind for f in diagnosis.findings if f.severity != "info"}
            assert kinds == ({"vanishing_gradient"} if sick else set()), (activation, diagnosis)
        if sick:
            lower = next(f for f in found.findings if f.kind == "vanishing_gradient").layers
            assert set(lower) <= {layer.name for layer in model.layers[:DEPTH // 2]}
            assert found.findings[0].remedies[0] == "swap_activation:relu"


def test_stop_on_ends_fit_at_the_epoch_end(tmp_path):
    doctor = GradientDoctorCallback(stop_on={"vanishing_gradient"}, on_finding=lambda f: None)
    history = _fit(dense_net("sigmoid", "glorot_uniform"), [doctor], epochs=5)
    assert doctor.stopped is not None and doctor.stopped.finding.kind == "vanishing_gradient"
    assert len(history.history["loss"]) == 1 and doctor.run.steps.size == 128 // BATCH


def _poisoned() -> tuple[np.ndarray, np.ndarray]:
    """Four batches; the third's loss and gradients are inf/NaN (the models train with MSE: torch's BCE rejects NaN)."""
    x, y = data(64)
    x[2 * BATCH] = np.inf
    return x, y


def test_guard_skips_the_poisoned_update(tmp_path):
    x, y = _poisoned()
    plain = dense_net("relu", "he_normal", loss="mse")
    _fit(plain, [], epochs=1, x=x, y=y)
    assert not all(np.isfinite(w).all() for w in plain.get_weights())  # unguarded, the NaN reaches the weights

    model, ref = dense_net("relu", "he_normal", loss="mse"), Reference()
    _fit(model, [ref, GradientDoctorCallback(log_dir=tmp_path / "run", guard=True, update_every=1, diagnose_on=())],
         epochs=1, x=x, y=y)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert [(i.step, i.kind) for i in gd.load(tmp_path / "run").interventions] == [(2, "skipped_update")]
    assert ref.update_norms[2] == [0.0] * len(model.layers) and all(u > 0 for u in ref.update_norms[3])


def test_loss_scale_optimizer_skips_are_counted(tmp_path):
    x, y = _poisoned()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
    model, ref = dense_net("relu", "he_normal", optimizer, loss="mse"), Reference()
    _fit(model, [ref, GradientDoctorCallback(log_dir=tmp_path / "run", diagnose_on=())], epochs=1, x=x, y=y)
    run = gd.load(tmp_path / "run")
    np.testing.assert_array_equal(run.steps, [0, 1, 2])  # 4 batches, one skipped by the LossScaleOptimizer
    np.testing.assert_array_equal(run.history("skipped"), [np.nan, np.nan, 1.0])
    np.testing.assert_allclose(run.history("grad_norm"), [ref.grad_norms[i] for i in (0, 1, 3)], rtol=1e-5)


def test_learning_rate_and_state_go_through_the_torch_face(tmp_path):
    model = dense_net("relu", "he_normal", keras.optimizers.SGD(0.1, momentum=0.9))
    doctor = GradientDoctorCallback(diagnose_on=())

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            step = doctor._step
            if batch == 0:
                self.state = step.state_dict()
                step.param_groups[0]["lr"] = 0.025            # as the guard's rollback sets it
            if batch == 1:
                self.lr = float(step.keras_optimizer.learning_rate)
                step.load_state_dict(self.state)
                self.restored = [v.value.clone() for v in step.keras_optimizer.variables]
            if batch == 7:  # the last: Keras gets it when the fit ends
                step.param_groups[0]["lr"] = 0.01

    check = Check()
    _fit(model, [doctor, check], epochs=1)
    assert check.lr == pytest.approx(0.025)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    for restored, saved in zip(check.restored, check.state["keras"]):
        torch.testing.assert_close(restored, saved)
    assert "apply" not in vars(model.optimizer) and "compute_loss" not in vars(model)  # unwrapped after fit


def test_report_and_show_read_the_record(tmp_path, capsys):
    model = dense_net("sigmoid", "glorot_uniform")
    _fit(model, [GradientDoctorCallback(log_dir=tmp_path / "run", diagnose_on=())])
    gd.report(gd.load(tmp_path / "run"), tmp_path / "report.html")
    last = f"{model.layers[-2].name}<"  # a whole name, as a table cell ends it
    assert last in (tmp_path / "report.html").read_text()
    assert main(["show", str(tmp_path / "run")]) == 0
    assert f" {model.layers[-2].name} " in capsys.readouterr().out


def test_another_backend_is_a_clear_error():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", "import gradient_doctor.integrations.keras"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "set KERAS_BACKEND=torch" in result.stderr and "'jax'" in result.stderr


def test_a_fit_that_raised_is_cleaned_up_by_the_next(tmp_path):
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("boom")

    model = dense_net("relu", "he_normal")
    first = GradientDoctorCallback(log_dir=tmp_path / "first", diagnose_on=())
    with pytest.raises(RuntimeError, match="boom"):
        _fit(model, [first, Boom()], epochs=1)
    assert "apply" in vars(model.optimizer)  # Keras called no callback: the wrapper is still there
    second = GradientDoctorCallback(log_dir=tmp_path / "second", diagnose_on=())
    _fit(model, [second], epochs=1)
    np.testing.assert_array_equal(gd.load(tmp_path / "first").steps, [0, 1, 2])  # closed and flushed by the second
    np.testing.assert_array_equal(gd.load(tmp_path / "second").steps, np.arange(128 // BATCH))
    assert "apply" not in vars(model.optimizer)
