"""Property test of gd.watch over random small models, cadences, batch sizes (0 and 1 too), dtypes and step patterns
(steps without a backward pass, gradient accumulation, steps without an optimizer): the training loop never sees an
exception or a gradient-doctor warning, the record stays readable, and every recorded gradient norm equals plain
torch's, computed here from `.grad` just before each step (issue 18).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import gradient_doctor as gd

ACTIVATIONS = {
    "relu": nn.ReLU, "relu_inplace": lambda: nn.ReLU(inplace=True), "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "none": None,
}
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
#: an iteration: its batch size, and what the loop does after the forward pass
KINDS = ("step", "step", "no_backward", "accumulate")


@dataclass(frozen=True)
class Case:
    widths: tuple[int, ...]  # input width, then each Linear layer's output width
    activation: str
    frozen: int | None  # index of a Linear layer with requires_grad=False
    dtype: str
    optimizer: str  # "sgd", "adam" or "none" (run.step() marks the steps)
    cadence: tuple[int, int, int, int, int]  # every, detail_every, update_every, activation_every, flush_every
    iterations: tuple[tuple[int, str], ...]
    on_disk: bool
    seed: int


cases = st.builds(
    Case,
    widths=st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    frozen=st.none() | st.integers(0, 2),
    dtype=st.sampled_from(sorted(DTYPES)),
    optimizer=st.sampled_from(["sgd", "adam", "none"]),
    cadence=st.tuples(st.integers(1, 3), st.sampled_from([0, 1, 2, 5]), st.sampled_from([0, 1, 3]),
                      st.sampled_from([0, 1, 2]), st.sampled_from([1, 2, 7])),
    iterations=st.lists(st.tuples(st.sampled_from([0, 1, 2, 5]), st.sampled_from(KINDS)), min_size=1,
                        max_size=6).map(tuple),
    on_disk=st.booleans(),
    seed=st.integers(0, 2**16),
)


def _model(case: Case) -> nn.Sequential:
    torch.manual_seed(case.seed)
    modules: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(case.widths, case.widths[1:])):
        linear = nn.Linear(fan_in, fan_out)
        if i == case.frozen:
            linear.requires_grad_(False)
        modules.append(linear)
        if ACTIVATIONS[case.activation] is not None and i < len(case.widths) - 2:
            modules.append(ACTIVATIONS[case.activation]())
    return nn.Sequential(*modules).to(DTYPES[case.dtype])


def _plain_norms(model: nn.Sequential) -> list[float]:
    """Per module, the L2 norm of its parameters' gradients (those that have one; NaN when none has), in float64."""
    out = []
    for module in model:
        grads = [p.grad.double() for p in module.parameters() if p.grad is not None]
        out.append(float(torch.sqrt(sum(g.pow(2).sum() for g in grads))) if grads else np.nan)
    return out


def _train(case: Case, model: nn.Sequential, run, optimizer) -> tuple[list[list[float]], list[float]]:
    """The case's loop; per recorded step, plain torch's gradient norms (NaN where not due) and the loss."""
    every = case.cadence[0]
    expected, losses, accumulating, step = [], [], False, 0
    for n, kind in case.iterations:
        if not accumulating:
            model.zero_grad(set_to_none=True)
        x = torch.randn(n, case.widths[0]).to(DTYPES[case.dtype])
        loss = model(x).float().pow(2).sum() / max(n, 1)
        if kind != "no_backward" and any(p.requires_grad for p in model.parameters()):
            loss.backward()
        accumulating = kind == "accumulate"
        if accumulating:
            continue
        norms = _plain_norms(model)
        expected.append(norms if step % every == 0 else [np.nan] * len(norms))
        losses.append(float(loss.detach()))
        if optimizer is not None:
            optimizer.step()
        run.step(loss=loss)
        step += 1
    return expected, losses


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases)
def test_watch_never_raises_keeps_a_readable_record_and_records_plain_torchs_gradient_norms(case: Case):
    model = _model(case)
    if not any(p.requires_grad for p in model.parameters()):
        model[-1].requires_grad_(True)  # gd.watch refuses a model with nothing to train
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = {"sgd": lambda: torch.optim.SGD(trainable, lr=0.01, momentum=0.9),
                 "adam": lambda: torch.optim.Adam(trainable, lr=1e-3), "none": lambda: None}[case.optimizer]()
    every, detail, update, activation, flush = case.cadence
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # any warning of the probe's (switched off, ...) fails here
        log_dir = f"{folder}/run" if case.on_disk else None
        with gd.watch(model, optimizer, log_dir=log_dir, every=every, detail_every=detail, update_every=update,
                      activation_every=activation, flush_every=flush) as run:
            expected, losses = _train(case, model, run, optimizer)
        record = gd.load(log_dir) if case.on_disk else run
        np.testing.assert_array_equal(record.steps, np.arange(len(expected)))
        order = [dict(model.named_children())[name] for name in record.layers]
        columns = [list(model).index(module) for module in order]
        recorded = record.history("grad_norm")
        assert recorded.shape == (len(expected), len(model))
        if expected:
            np.testing.assert_allclose(recorded, np.asarray(expected)[:, columns], rtol=2e-5, atol=1e-30)
            np.testing.assert_allclose(record.history("loss"), losses, rtol=1e-6)
        assert isinstance(record.diagnose().healthy, bool)
