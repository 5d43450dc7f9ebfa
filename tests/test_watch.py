"""Every number `gd.watch` records, checked against an independent plain-torch float64 computation.

The reference never calls gradient-doctor code: it captures gradients and weights in its own optimizer
step hooks (registered *before* `gd.watch`, so they run first and see what the probe sees), and the
activation outputs in its own forward hooks, then computes every statistic directly in float64.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import gradient_doctor as gd

RTOL = 1e-5
ATOL = 1e-12
NAN = math.nan

GRAD_METRICS = ("grad_norm", "grad_max", "grad_zero_frac", "nonfinite")
NORM_METRICS = ("grad_norm", "nonfinite")  # every `every`-th step; the other two every `detail_every`-th
PARAM_METRICS = GRAD_METRICS + ("weight_norm", "update_norm")
ACT_METRICS = ("act_mean", "act_std", "saturated_frac", "zero_frac", "dead_frac")
LAYER_METRICS = PARAM_METRICS + ACT_METRICS

# The activations these tests use: (output bounds or None, rectified?)
ACTIVATIONS = {
    nn.Sigmoid: ((0.0, 1.0), False),
    nn.Tanh: ((-1.0, 1.0), False),
    nn.ReLU: (None, True),
    nn.ReLU6: ((0.0, 6.0), True),
}


def _spec(module: nn.Module):
    return ACTIVATIONS.get(type(module))


# --------------------------------------------------------------------------------------------
# Independent reference capture
# --------------------------------------------------------------------------------------------
@dataclass
class StepRef:
    grads: dict[int, Tensor | None]  # id(param) -> float64 dense gradient, None when there is none
    before: dict[int, Tensor] | None  # id(param) -> float64 weights before the optimizer step
    after: dict[int, Tensor]  # id(param) -> float64 weights after the step
    acts: dict[str, list[Tensor]]  # layer name -> float64 outputs of its grad-enabled calls
    loss: float | None = None


@dataclass
class RefLayer:
    name: str
    module: nn.Module
    params: list[nn.Parameter]
    spec: tuple | None


@dataclass
class Reference:
    """Captures, with our own hooks, what a training step did; register it before `gd.watch`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None = None
    mutate: object = None  # callable(step_index) run in our step pre-hook before the snapshot
    steps: list[StepRef] = field(default_factory=list)

    def __post_init__(self):
        self.params = list(self.model.named_parameters())  # deduplicated, first owner's name
        self.layers: dict[str, RefLayer] = {}
        for name, module in self.model.named_modules():
            own = list(module.parameters(recurse=False))
            spec = _spec(module)
            if own or spec is not None:
                self.layers[name] = RefLayer(name, module, own, spec)
        self.tracked = set()
        if self.optimizer is not None:
            self.tracked = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
        self._acts: dict[str, list[Tensor]] = defaultdict(list)
        self._grads = self._before = None
        self._handles = [
            layer.module.register_forward_hook(self._act_hook(layer.name))
            for layer in self.layers.values()
            if layer.spec is not None
        ]
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(self._pre))
            self._handles.append(self.optimizer.register_step_post_hook(self._post))

    def _act_hook(self, name):
        def hook(module, inputs, output):
            if torch.is_grad_enabled():
                self._acts[name].append(output.detach().to(torch.float64, copy=True))

        return hook

    def _snapshot_grads(self):
        out = {}
        for _, p in self.params:
            g = p.grad
            if g is not None and g.is_sparse:
                g = g.to_dense()
            out[id(p)] = None if g is None else g.detach().to(torch.float64, copy=True)
        return out

    def _weights(self):
        return {id(p): p.detach().to(torch.float64, copy=True) for _, p in self.params}

    def _pre(self, optimizer, args, kwargs):
        if self.mutate is not None:
            self.mutate(len(self.steps))
        self._grads = self._snapshot_grads()
        self._before = self._weights()

    def _post(self, optimizer, args, kwargs):
        self._finish()

    def mark(self):
        """Without an optimizer: call right before `run.step()`."""
        self._grads = self._snapshot_grads()
        self._before = None
        self._finish()

    def _finish(self):
        self.steps.append(StepRef(self._grads, self._before, self._weights(), dict(self._acts)))
        self._acts = defaultdict(list)

    def set_loss(self, loss):
        self.steps[-1].loss = float(loss.detach())

    def close(self):
        for h in self._handles:
            h.remove()


# --------------------------------------------------------------------------------------------
# Reference statistics (float64, from the captured tensors)
# --------------------------------------------------------------------------------------------
def grad_stats(grads: list[Tensor | None]) -> list[float]:
    present = [g for g in grads if g is not None]
    if not present:
        return [NAN] * 4
    flat = torch.cat([g.reshape(-1) for g in present])
    return [
        float(flat.square().sum().sqrt()),
        float(flat.abs().max()),
        float((flat == 0).sum()) / flat.numel(),
        float((~torch.isfinite(flat)).sum()),
    ]


def l2(tensors: list[Tensor]) -> float:
    if not tensors:
        return NAN
    return math.sqrt(sum(float(t.square().sum()) for t in tensors))


def unit_axis(t: Tensor) -> int:
    if t.dim() == 1:
        return 0
    return t.dim() - 1 if t.dim() == 3 else 1


def act_stats(outputs: list[Tensor], spec, eps: float) -> list[float]:
    if spec is None or not outputs:
        return [NAN] * 5
    bounds, rectified = spec
    flat = torch.cat([o.reshape(-1) for o in outputs])
    mean = float(flat.mean())
    std = float(flat.std(correction=0))
    saturated = zero = dead = NAN
    if bounds is not None:
        lo, hi = bounds
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        saturated = float(((flat - mid).abs() >= half - eps * (hi - lo)).double().mean())
    if rectified:
        zero = float((flat == 0).double().mean())
        alive = None
        for o in outputs:
            axis = unit_axis(o)
            nz = (o != 0).movedim(axis, 0).reshape(o.shape[axis], -1).any(dim=1)
            alive = nz if alive is None else alive | nz
        dead = float((~alive).double().mean())
    return [mean, std, saturated, zero, dead]


def expected(ref: Reference, order: list[str], *, every=1, detail_every=1, update_every=1, activation_every=1,
             eps=0.01):
    """dict metric -> [steps, layers] (layers in `order`) and dict metric -> [steps, params]."""
    n = len(ref.steps)
    layers = {m: np.full((n, len(order)), NAN) for m in LAYER_METRICS}
    params = {m: np.full((n, len(ref.params)), NAN) for m in PARAM_METRICS}
    for s, step in enumerate(ref.steps):
        grads_due = every and s % every == 0
        detail_due = detail_every and s % detail_every == 0
        update_due = ref.optimizer is not None and update_every and s % update_every == 0
        acts_due = activation_every and s % activation_every == 0
        for li, name in enumerate(order):
            layer = ref.layers[name]
            ids = [id(p) for p in layer.params]
            for m, v in zip(GRAD_METRICS, grad_stats([step.grads[i] for i in ids])):
                if (grads_due and m in NORM_METRICS) or (detail_due and m not in NORM_METRICS):
                    layers[m][s, li] = v
            if detail_due:
                layers["weight_norm"][s, li] = l2([step.after[i] for i in ids])
            if update_due:
                tracked = [i for i in ids if i in ref.tracked]
                layers["update_norm"][s, li] = l2([step.before[i] - step.after[i] for i in tracked])
            if acts_due:
                for m, v in zip(ACT_METRICS, act_stats(step.acts.get(name, []), layer.spec, eps)):
                    layers[m][s, li] = v
        for pi, (_, p) in enumerate(ref.params):
            for m, v in zip(GRAD_METRICS, grad_stats([step.grads[id(p)]])):
                if (grads_due and m in NORM_METRICS) or (detail_due and m not in NORM_METRICS):
                    params[m][s, pi] = v
            if detail_due:
                params["weight_norm"][s, pi] = l2([step.after[id(p)]])
            if update_due and id(p) in ref.tracked:
                params["update_norm"][s, pi] = l2([step.before[id(p)] - step.after[id(p)]])
    return layers, params


def assert_close(actual, wanted, what, *, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), wanted, rtol=RTOL, atol=atol,
                               equal_nan=True, err_msg=what)


def check_run(run, ref: Reference, order: list[str], *, atol=ATOL, **cadence):
    """Every layer and parameter metric of `run` against the reference, plus layers/params/steps."""
    assert run.layers == order
    assert run.params == [name for name, _ in ref.params]
    np.testing.assert_array_equal(run.steps, np.arange(len(ref.steps)))
    want_layers, want_params = expected(ref, order, **cadence)
    for metric in LAYER_METRICS:
        got = run.history(metric)
        assert got.shape == (len(ref.steps), len(order)), metric
        assert_close(got, want_layers[metric], f"layer metric {metric}", atol=atol)
    for li, name in enumerate(order):  # the one-layer view agrees with the table
        for metric in ("grad_norm", "update_norm", "act_std"):
            assert_close(run.history(metric, layer=name), want_layers[metric][:, li], f"{metric} of {name}", atol=atol)
    for pi, (pname, _) in enumerate(ref.params):
        for metric in PARAM_METRICS:
            assert_close(run.history(metric, layer=pname), want_params[metric][:, pi], f"{metric} of {pname}", atol=atol)
    if any(s.loss is not None for s in ref.steps):
        assert_close(run.history("loss"), [NAN if s.loss is None else s.loss for s in ref.steps], "loss")
    return want_layers, want_params


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
def make_mlp(seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(8, 16), nn.Sigmoid(),
        nn.Linear(16, 16), nn.Tanh(),
        nn.Linear(16, 12), nn.ReLU(inplace=True),
        nn.Linear(12, 10), nn.ReLU6(),
        nn.Linear(10, 1),
    )
    with torch.no_grad():
        model[0].weight.mul_(4)  # some sigmoid outputs saturate
        model[2].weight.mul_(3)  # some tanh outputs saturate
        model[4].bias[:4] = -100.0  # units 0-3 of the in-place ReLU are dead
        model[6].weight.mul_(8)  # some ReLU6 outputs reach the top bound
    return model


MLP_LAYERS = [str(i) for i in range(9)]


def mlp_batch(seed, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g) * 2, torch.randn(n, 1, generator=g)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=True)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8 * 4 * 4, 5)
        with torch.no_grad():
            self.conv2.bias[:3] = -100.0  # channels 0-2 are dead

    def forward(self, x):
        x = self.pool(self.bn(self.relu1(self.conv1(x))))
        x = self.relu2(self.conv2(x))
        return self.fc(x.flatten(1))


class Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        torch.manual_seed(2)
        self.rnn = kind(4, 8, batch_first=True)
        self.proj = nn.Linear(8, 6)
        self.act = nn.ReLU()
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            self.proj.bias[:2] = -100.0  # features 0-1 of the (N, L, C) ReLU output are dead

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(self.act(self.proj(out)).mean(dim=1))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.emb = nn.Embedding(20, 8)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 20)
        self.head.weight = self.emb.weight  # one Parameter, two owners

    def forward(self, tokens):
        return self.head(self.act(self.emb(tokens)))


def _train(model, opt, ref, run, batches, loss_fn, *, no_grad_forward=None):
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        run.step(loss=loss)
        ref.set_loss(loss)
        if no_grad_forward is not None:
            with torch.no_grad():  # a validation pass: not part of any step's activation statistics
                model(no_grad_forward)


# --------------------------------------------------------------------------------------------
# Models × optimizers
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_mlp_every_number(optimizer):
    model = make_mlp()
    opt = (torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if optimizer == "sgd_momentum"
           else torch.optim.Adam(model.parameters(), lr=0.01))
    ref = Reference(model, opt)
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        _train(model, opt, ref, run, [mlp_batch(s) for s in range(4)], nn.functional.mse_loss,
               no_grad_forward=torch.full((5, 8), 50.0))
    ref.close()
    want, _ = check_run(run, ref, MLP_LAYERS)
    # the data exercise every statistic non-trivially
    assert 0 < want["saturated_frac"][0, 1] < 1 and 0 < want["saturated_frac"][0, 3] < 1
    assert 0 < want["saturated_frac"][0, 7] < 1
    assert 4 / 12 <= want["dead_frac"][0, 5] < 1 and 0 < want["grad_zero_frac"][0, 4] < 1
    assert np.all(want["update_norm"][:, [0, 2, 4, 6, 8]] > 0)


def test_cnn_every_number():
    model = CNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ref = Reference(model, opt)
    g = torch.Generator().manual_seed(10)
    batches = [(torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, 5, (4,), generator=g)) for _ in range(3)]
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        _train(model, opt, ref, run, batches, nn.functional.cross_entropy)
    ref.close()
    want, _ = check_run(run, ref, ["conv1", "relu1", "bn", "conv2", "relu2", "fc"])
    assert "bn.running_mean" not in run.params  # buffers are not parameters
    assert want["dead_frac"][0, 4] >= 3 / 8 and 0 < want["zero_frac"][0, 1] < 1


@pytest.mark.parametrize("kind", [nn.RNN, nn.LSTM])
def test_recurrent_every_number(kind):
    model = Recurrent(kind)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ref = Reference(model, opt)
    g = torch.Generator().manual_seed(11)
    batches = [(torch.randn(3, 7, 4, generator=g), torch.randint(0, 3, (3,), generator=g)) for _ in range(3)]
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        _train(model, opt, ref, run, batches, nn.functional.cross_entropy)
    ref.close()
    want, _ = check_run(run, ref, ["rnn", "proj", "act", "head"])
    assert len(ref.layers["rnn"].params) == 4
    assert 2 / 6 <= want["dead_frac"][0, 2] < 1  # unit axis of an (N, L, C) output is the last one


def test_tied_weights_count_in_every_owner():
    model = Tied()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    ref = Reference(model, opt)
    g = torch.Generator().manual_seed(12)
    batches = [(torch.randint(0, 20, (4, 5), generator=g), torch.randint(0, 20, (4, 5), generator=g)) for _ in range(3)]
    loss_fn = lambda logits, y: nn.functional.cross_entropy(logits.reshape(-1, 20), y.reshape(-1))  # noqa: E731
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        _train(model, opt, ref, run, batches, loss_fn)
    ref.close()
    assert run.params == ["emb.weight", "head.bias"]
    want, _ = check_run(run, ref, ["emb", "act", "head"])
    # the head's numbers include the shared matrix and its own bias
    step = ref.steps[1]
    w, b = model.emb.weight, model.head.bias
    head_norm = math.sqrt(float(step.grads[id(w)].square().sum() + step.grads[id(b)].square().sum()))
    assert run.history("grad_norm", layer="head")[1] == pytest.approx(head_norm, rel=RTOL)
    assert run.history("grad_norm", layer="emb")[1] == pytest.approx(float(step.grads[id(w)].norm()), rel=RTOL)
    assert want["update_norm"][1, 2] > want["update_norm"][1, 0] > 0


def test_sparse_embedding_gradient():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Embedding(30, 6, sparse=True), nn.Tanh(), nn.Linear(6, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ref = Reference(model, opt)
    tokens = torch.tensor([[1, 2, 2, 5], [5, 5, 7, 1]])  # repeated tokens: an uncoalesced sparse grad
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for _ in range(2):
            opt.zero_grad()
            model(tokens).square().mean().backward()
            assert model[0].weight.grad.is_sparse
            opt.step()
    ref.close()
    want, _ = check_run(run, ref, ["0", "1", "2"])
    assert want["grad_zero_frac"][0, 0] == pytest.approx(1 - 4 * 6 / (30 * 6))


# --------------------------------------------------------------------------------------------
# Step semantics
# --------------------------------------------------------------------------------------------
def test_gradient_accumulation_records_the_accumulated_gradient():
    model = make_mlp(seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref = Reference(model, opt)
    params = list(model.parameters())
    independent = []  # per optimizer step: the sum over micro-batches of autograd.grad of each loss
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for step in range(3):
            opt.zero_grad()
            total = [torch.zeros_like(p, dtype=torch.float64) for p in params]
            for micro in range(3):
                x, y = mlp_batch(100 * step + micro, n=6)
                loss = nn.functional.mse_loss(model(x), y)
                for t, gp in zip(total, torch.autograd.grad(loss, params, retain_graph=True)):
                    t += gp.double()
                loss.backward()
            independent.append(total)
            opt.step()
    ref.close()
    assert len(run.steps) == 3  # one record per optimizer step, not per backward
    check_run(run, ref, MLP_LAYERS)  # the activation numbers aggregate the three micro-batches
    for step, total in enumerate(independent):
        for i, (name, p) in enumerate(model.named_parameters()):
            assert run.history("grad_norm", layer=name)[step] == pytest.approx(float(total[i].norm()), rel=RTOL)
        layer0 = float(torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in total[:2]])))  # weight, bias
        assert run.history("grad_norm", layer="0")[step] == pytest.approx(layer0, rel=RTOL)


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.fc1 = nn.Linear(6, 10)
        self.fc2 = nn.Linear(10, 10)
        self.act = nn.ReLU()
        self.head = nn.Linear(10, 1)
        with torch.no_grad():
            self.fc1.bias[:4] = -100.0  # units 0-3 dead in the first call
            self.fc2.bias[2:6] = -100.0  # units 2-5 dead in the second call

    def forward(self, x):
        h = self.act(self.fc1(x))
        return self.head(self.act(self.fc2(h)))


def test_module_called_twice_aggregates_both_calls():
    model = Twice()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ref = Reference(model, opt)
    g = torch.Generator().manual_seed(13)
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(8, 6, generator=g)).square().mean().backward()
            opt.step()
    ref.close()
    want, _ = check_run(run, ref, ["fc1", "act", "fc2", "head"])
    for step in ref.steps:
        assert len(step.acts["act"]) == 2
    # dead only if dead in both calls: units 2-3 for sure, fewer than in either call alone
    first, second = ref.steps[0].acts["act"]
    per_call = [act_stats([o], ACTIVATIONS[nn.ReLU], 0.01)[4] for o in (first, second)]
    assert 0.2 <= want["dead_frac"][0, 1] < min(per_call)
    both = act_stats([first, second], ACTIVATIONS[nn.ReLU], 0.01)
    assert not math.isclose(both[1], act_stats([second], ACTIVATIONS[nn.ReLU], 0.01)[1], rel_tol=1e-3)


@pytest.mark.parametrize("every", [1, 2])
def test_cadences(every):
    model = make_mlp(seed=7)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ref = Reference(model, opt)
    with gd.watch(model, opt, every=every, detail_every=5, update_every=3, activation_every=2) as run:
        _train(model, opt, ref, run, [mlp_batch(s) for s in range(7)], nn.functional.mse_loss)
    ref.close()
    np.testing.assert_array_equal(run.steps, np.arange(7))
    check_run(run, ref, MLP_LAYERS, every=every, detail_every=5, update_every=3, activation_every=2)
    # the NaN pattern, stated directly
    updated = ~np.isnan(run.history("update_norm", layer="0"))
    np.testing.assert_array_equal(np.flatnonzero(updated), [0, 3, 6])
    acted = ~np.isnan(run.history("act_mean", layer="1"))
    np.testing.assert_array_equal(np.flatnonzero(acted), [0, 2, 4, 6])
    graded = ~np.isnan(run.history("grad_norm", layer="0"))
    np.testing.assert_array_equal(np.flatnonzero(graded), np.arange(0, 7, every))
    nonfinite_known = ~np.isnan(run.history("nonfinite", layer="0"))
    np.testing.assert_array_equal(np.flatnonzero(nonfinite_known), np.arange(0, 7, every))
    for metric in ("grad_max", "grad_zero_frac", "weight_norm"):
        detailed = ~np.isnan(run.history(metric, layer="0"))
        np.testing.assert_array_equal(np.flatnonzero(detailed), [0, 5], err_msg=metric)


class Partial(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(8)
        self.frozen = nn.Linear(5, 8)
        self.partly = nn.Linear(8, 8)
        self.act = nn.Tanh()
        self.head = nn.Linear(8, 1)
        self.unused = nn.Linear(8, 3)  # never called
        self.frozen.requires_grad_(False)
        self.partly.bias.requires_grad_(False)

    def forward(self, x):
        return self.head(self.act(self.partly(self.frozen(x))))


def test_frozen_and_unused_parameters():
    model = Partial()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    ref = Reference(model, opt)
    g = torch.Generator().manual_seed(14)
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 5, generator=g)).square().mean().backward()
            opt.step()
    ref.close()
    order = ["frozen", "partly", "act", "head", "unused"]  # never-called layers come last
    want, _ = check_run(run, ref, order)
    for metric in GRAD_METRICS:
        assert np.isnan(run.history(metric, layer="frozen")).all()
        assert np.isnan(run.history(metric, layer="unused")).all()
        assert np.isnan(run.history(metric, layer="partly.bias")).all()
    assert np.isnan(run.history("update_norm", layer="frozen")).all()  # not in the optimizer
    w_frozen = math.sqrt(float(model.frozen.weight.double().square().sum() + model.frozen.bias.double().square().sum()))
    np.testing.assert_allclose(run.history("weight_norm", layer="frozen"), w_frozen, rtol=RTOL)
    # the half-frozen layer's gradient numbers are over its weight alone, its weight norm over both
    assert run.history("grad_norm", layer="partly")[2] == pytest.approx(float(ref.steps[2].grads[id(model.partly.weight)].norm()), rel=RTOL)
    w, b = model.partly.weight.detach().double(), model.partly.bias.detach().double()
    assert run.history("weight_norm", layer="partly")[2] == pytest.approx(
        math.sqrt(float(w.square().sum() + b.square().sum())), rel=RTOL)
    assert want["update_norm"][2, 1] == pytest.approx(run.history("update_norm", layer="partly.weight")[2], rel=RTOL)
    np.testing.assert_array_equal(run.history("update_norm", layer="unused"), 0.0)  # no grad: SGD skips it


def test_without_optimizer_run_step_marks_the_step():
    model = make_mlp(seed=9)
    ref = Reference(model)
    with gd.watch(model, detail_every=1, update_every=1, activation_every=1) as run:
        for s in range(3):
            model.zero_grad()
            x, y = mlp_batch(s)
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            ref.mark()
            run.step(loss=loss)
            ref.set_loss(loss)
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.05 * p.grad
    ref.close()
    check_run(run, ref, MLP_LAYERS)
    assert np.isnan(run.history("update_norm")).all()
    assert np.isnan(run.history("update_norm", layer="0.weight")).all()


# --------------------------------------------------------------------------------------------
# Non-finite and extreme-scale gradients
# --------------------------------------------------------------------------------------------
def test_nonfinite_gradients_are_counted_and_contained():
    model = make_mlp(seed=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def inject(step):  # in our pre-hook, before the probe's: the probe sees these gradients
        if step == 1:
            model[2].weight.grad[0, 0] = math.inf
            model[2].weight.grad[1, 1] = math.nan
            model[2].bias.grad[3] = -math.inf
            model[6].bias.grad[0] = -math.inf

    ref = Reference(model, opt, mutate=inject)
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        # registered after the probe's: clean the gradients before the optimizer applies them
        def clean(optimizer, args, kwargs):
            for p in model.parameters():
                p.grad.nan_to_num_(0.0, 0.0, 0.0)

        opt.register_step_pre_hook(clean)
        _train(model, opt, ref, run, [mlp_batch(s) for s in range(3)], nn.functional.mse_loss)
    ref.close()
    check_run(run, ref, MLP_LAYERS)
    nonfinite = run.history("nonfinite")
    assert nonfinite[1, 2] == 3 and nonfinite[1, 6] == 1
    assert nonfinite[[0, 2]][:, [0, 2, 4, 6, 8]].sum() == 0 and nonfinite[1, [0, 4, 8]].sum() == 0
    assert np.isnan(run.history("grad_norm", layer="2")[1]) and np.isnan(run.history("grad_max", layer="2")[1])
    assert run.history("grad_norm", layer="6")[1] == math.inf and run.history("grad_max", layer="6")[1] == math.inf
    assert run.history("nonfinite", layer="2.weight")[1] == 2 and run.history("nonfinite", layer="2.bias")[1] == 1
    assert run.history("grad_norm", layer="6.weight")[1] == pytest.approx(
        float(ref.steps[1].grads[id(model[6].weight)].norm()), rel=RTOL)
    assert np.isfinite(run.history("grad_norm")[:, [0, 4, 8]]).all()
    assert np.isfinite(run.history("weight_norm")[:, [0, 2, 4, 6, 8]]).all()


def test_nonfinite_gradient_from_a_tensor_hook():
    model = make_mlp(seed=11)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    ref = Reference(model, opt)
    model[4].weight.register_hook(lambda g: torch.where(torch.arange(g.numel()).reshape(g.shape) % 7 == 0,
                                                        torch.full_like(g, math.inf), g))
    with gd.watch(model, opt, update_every=0, activation_every=0) as run:
        opt.zero_grad()
        x, y = mlp_batch(0)
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    ref.close()
    check_run(run, ref, MLP_LAYERS, update_every=0, activation_every=0)
    assert run.history("nonfinite", layer="4")[0] == math.ceil(12 * 16 / 7)


@pytest.mark.parametrize("scale", [1e-25, 3e20])
def test_tiny_and_huge_float32_gradients(scale):
    model = make_mlp(seed=12)
    opt = torch.optim.SGD(model.parameters(), lr=0.01 / scale, momentum=0.5)
    ref = Reference(model, opt)
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for s in range(3):
            opt.zero_grad()
            x, y = mlp_batch(s)
            (nn.functional.mse_loss(model(x), y) * scale).backward()
            opt.step()
    ref.close()
    assert model[0].weight.grad.dtype == torch.float32
    want, want_params = check_run(run, ref, MLP_LAYERS, atol=0.0)
    norms = want["grad_norm"][:, [0, 2, 4, 6, 8]]
    if scale < 1:
        assert (norms < 1e-20).all()  # float32 squares of these entries underflow to zero
        assert float(model[0].weight.grad.square().sum()) == 0.0
    else:
        assert (norms > 1e18).all()  # float32 sums of squares overflow (or come near it)
        assert float(model[0].weight.grad.square().sum()) == math.inf  # float32 overflows
        assert (run.history("nonfinite")[:, [0, 2, 4, 6, 8]] == 0).all()


@pytest.mark.parametrize("scale", [1e-25, 1e20])
def test_tiny_and_huge_activations(scale):
    torch.manual_seed(13)
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 8, bias=False), nn.Tanh())
    ref = Reference(model)
    with gd.watch(model, detail_every=1, activation_every=1) as run:
        for s in range(2):
            model(torch.randn(16, 4, generator=torch.Generator().manual_seed(s)) * scale)
            ref.mark()
            run.step()
    ref.close()
    want, _ = check_run(run, ref, ["0", "1", "2", "3"], atol=0.0)
    assert 0 < want["act_std"][0, 1] < 1e-20 if scale < 1 else want["act_std"][0, 1] > 1e19


def _own_grad_norms(model: nn.Sequential, indices: list[int]) -> list[float]:
    """Plain torch: each module's L2 norm over its own parameters' current gradients (float64)."""
    return [
        math.sqrt(sum(float(p.grad.double().square().sum()) for p in model[i].parameters(recurse=False)))
        for i in indices
    ]


WEIGHTED = [0, 2, 4, 6, 8]  # the Linear layers of make_mlp


def test_clipped_gradients_are_the_ones_recorded():
    model = make_mlp(seed=9)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    want = []
    with gd.watch(model, opt) as run:
        for s in range(3):
            opt.zero_grad()
            x, y = mlp_batch(s)
            nn.functional.mse_loss(model(x), y).backward()
            before = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
            assert before > 0.5  # the clip really scales the gradients down
            want.append(_own_grad_norms(model, WEIGHTED))
            opt.step()
    got = run.history("grad_norm")[:, WEIGHTED]
    np.testing.assert_allclose(got, want, rtol=RTOL)
    np.testing.assert_allclose(np.sqrt((got ** 2).sum(axis=1)), 0.05, rtol=RTOL)  # the clipped total


def test_grad_scaler_steps_record_unscaled_gradients():
    model = make_mlp(seed=10)
    twin = copy.deepcopy(model)  # trained without loss scaling: the reference gradients
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    want = []
    with gd.watch(model, opt) as run:
        for s in range(3):
            x, y = mlp_batch(s)
            opt.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(opt)  # unscale_ (by a power of two: exact), then optimizer.step()
            scaler.update()
            twin_opt.zero_grad()
            nn.functional.mse_loss(twin(x), y).backward()
            want.append(_own_grad_norms(twin, WEIGHTED))
            twin_opt.step()
    assert scaler.get_scale() == 2.0 ** 12  # no step was skipped
    np.testing.assert_allclose(run.history("grad_norm")[:, WEIGHTED], want, rtol=RTOL)


def test_grad_scaler_skipped_steps_are_counted_and_attach_no_metrics():
    model = make_mlp(seed=11)
    twin = copy.deepcopy(model)  # plain torch replay: the same updates, skipping the same iterations
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12, growth_interval=1000)
    overflow = {1, 2, 4}  # iterations whose scaled loss overflows: GradScaler skips optimizer.step()
    want_grads, want_losses = [], []
    with pytest.warns(RuntimeWarning, match="skipped step"):
        with gd.watch(model, opt) as run:
            for s in range(6):
                x, y = mlp_batch(s)
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                scaler.scale(loss * (math.inf if s in overflow else 1.0)).backward()
                scaler.step(opt)
                scaler.update()
                run.step(loss=loss)
                if s not in overflow:
                    twin_opt.zero_grad()
                    twin_loss = nn.functional.mse_loss(twin(x), y)
                    twin_loss.backward()
                    want_grads.append(_own_grad_norms(twin, WEIGHTED))
                    want_losses.append(float(twin_loss.detach()))
                    twin_opt.step()
    np.testing.assert_array_equal(run.steps, [0, 1, 2])  # iterations 0, 3, 5
    np.testing.assert_allclose(run.history("loss"), want_losses, rtol=RTOL)
    np.testing.assert_allclose(run.history("grad_norm")[:, WEIGHTED], want_grads, rtol=RTOL)
    np.testing.assert_array_equal(run.history("skipped"), [NAN, 2.0, 1.0])


class LastStep(nn.Module):
    """A recurrent module read at its last time step (the adding problem's shape of loss)."""

    def __init__(self, kind, batch_first):
        super().__init__()
        torch.manual_seed(4)
        self.rnn = kind(3, 6, batch_first=batch_first)
        self.head = nn.Linear(6, 1)
        self.batch_first = batch_first

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1] if self.batch_first else out[-1])


@pytest.mark.parametrize("kind, batch_first", [(nn.RNN, True), (nn.LSTM, False), (nn.GRU, True)])
def test_time_ratio_is_the_input_gradient_through_time_and_changes_no_parameter_gradient(kind, batch_first):
    model = LastStep(kind, batch_first)
    twin = copy.deepcopy(model)  # plain torch: the same steps, with the input gradient asked for explicitly
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(5)
    want = []
    with gd.watch(model, opt, activation_every=2) as run:
        for s in range(4):
            x = torch.randn(5, 12, 3, generator=g)
            x = x if batch_first else x.transpose(0, 1).contiguous()
            y = torch.randn(5, 1, generator=g)
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            leaf = x.clone().requires_grad_(True)
            twin_opt.zero_grad()
            nn.functional.mse_loss(twin(leaf), y).backward()
            per_step = leaf.grad.double().movedim(1 if batch_first else 0, 0).reshape(12, -1).norm(dim=1)
            want.append(float(per_step[0] / per_step[-1]) if s % 2 == 0 else NAN)
            for p, q in zip(model.parameters(), twin.parameters()):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-6, atol=0)
            twin_opt.step()
    np.testing.assert_allclose(run.history("time_ratio", layer="rnn"), want, rtol=RTOL)
    assert 0 < want[0] < 1  # the gradient fades back through time at init
    assert np.isnan(run.history("time_ratio", layer="head")).all()
