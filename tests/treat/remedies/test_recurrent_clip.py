"""Recurrent swaps, gradient clipping and greedy pre-training, each checked against plain torch.

References are computed independently: nn.LSTM called directly, torch.nn.utils.clip_grad_*_ on a twin model,
AGC written out row by row from Brock et al. 2021, reconstruction errors by least squares (torch.linalg.lstsq).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import NotApplicable
from gradient_doctor.treat.remedies.clipping import adaptive_clip, clip, clip_grad_norm, clip_grad_value
from gradient_doctor.treat.remedies.pretrain import greedy_pretrain
from gradient_doctor.treat.remedies.recurrent import LSTMAsRNN, to_gru, to_lstm

SWAPS = [(to_lstm, nn.LSTM), (to_gru, nn.GRU)]
RNN_OPTIONS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")


# --------------------------------------------------------------------------------------------
# to_lstm / to_gru
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("swap, kind", SWAPS)
@pytest.mark.parametrize(
    "options",
    [
        dict(num_layers=1, batch_first=False, bidirectional=False, bias=True, dropout=0.0),
        dict(num_layers=3, batch_first=True, bidirectional=True, bias=False, dropout=0.25),
    ],
)
def test_swap_of_root_rnn_keeps_shape_options_dtype_and_mode(swap, kind, options):
    torch.manual_seed(0)
    rnn = nn.RNN(5, 7, **options).double().eval()
    new = swap(rnn)
    assert isinstance(new, kind) and new is not rnn
    assert all(getattr(new, o) == getattr(rnn, o) for o in RNN_OPTIONS)
    assert new.proj_size == 0 and not new.training
    assert {p.dtype for p in new.parameters()} == {torch.float64}
    x = torch.randn((4, 9, 5) if options["batch_first"] else (9, 4, 5), dtype=torch.float64)
    h0 = torch.randn(options["num_layers"] * (2 if options["bidirectional"] else 1), 4, 7, dtype=torch.float64)
    for args in [(x,), (x, h0)]:
        (out_old, h_old), (out, h) = rnn(*args), new(*args)  # the nn.RNN call site, unchanged
        assert out.shape == out_old.shape and h.shape == h_old.shape and h.dtype == torch.float64


class Classifier(nn.Module):
    """A user model written for nn.RNN: `out, h = self.rnn(x)` and `h[-1]`; the RNN is shared by two paths."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(3, 6, num_layers=2, batch_first=True)
        self.blocks = nn.ModuleList([nn.Sequential(nn.RNN(6, 4)), nn.Linear(4, 2)])
        self.alias = self.rnn

    def forward(self, x):
        out, h = self.rnn(x)
        out, h = self.blocks[0](out.transpose(0, 1))
        return self.blocks[1](h[-1])


@pytest.mark.parametrize("swap, kind", SWAPS)
def test_swap_reaches_nested_rnns_and_keeps_call_sites_working(swap, kind):
    torch.manual_seed(0)
    model = Classifier()
    x = torch.randn(8, 11, 3)
    before = model(x).shape
    assert swap(model) is model
    assert isinstance(model.rnn, kind) and isinstance(model.blocks[0][0], kind)
    assert model.alias is model.rnn  # a shared RNN becomes one shared replacement
    assert not any(isinstance(m, nn.RNN) for m in model.modules())
    assert model(x).shape == before


def test_lstm_as_rnn_answers_like_nn_lstm_with_zero_cell_state():
    torch.manual_seed(0)
    lstm = LSTMAsRNN(4, 5, num_layers=2, bidirectional=True)
    plain = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
    plain.load_state_dict(lstm.state_dict())  # same parameter names as nn.LSTM
    x, h0 = torch.randn(6, 3, 4), torch.randn(4, 3, 5)
    out, h = lstm(x)
    ref_out, (ref_h, _) = plain(x)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    torch.testing.assert_close(h, ref_h, rtol=0, atol=0)
    out, h = lstm(x, h0)
    ref_out, (ref_h, _) = plain(x, (h0, torch.zeros_like(h0)))
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    torch.testing.assert_close(h, ref_h, rtol=0, atol=0)
    c0 = torch.randn(4, 3, 5)
    torch.testing.assert_close(lstm(x, (h0, c0))[1], plain(x, (h0, c0))[1][0], rtol=0, atol=0)


@pytest.mark.parametrize("swap", [to_lstm, to_gru])
def test_swap_without_rnn_is_not_applicable_and_leaves_model_identical(swap):
    torch.manual_seed(0)
    model = nn.Sequential(nn.LSTM(3, 4), nn.GRU(4, 4))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(NotApplicable, match="no nn.RNN"):
        swap(model)
    assert [type(m) for m in model] == [nn.LSTM, nn.GRU]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


# --------------------------------------------------------------------------------------------
# clipping
# --------------------------------------------------------------------------------------------
def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 3)
    ).double()


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 2, 6, 6, generator=g, dtype=torch.float64) * 5, torch.randint(0, 3, (8,), generator=g)


def _backward(model: nn.Module, seed: int = 1) -> None:
    x, y = _batch(seed)
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def _global_norm(grads) -> torch.Tensor:
    return torch.sqrt(sum((g.double() ** 2).sum() for g in grads))


def _assert_same(a, b, **tol):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, **tol)


def _clipped_step(model: nn.Module, clipper_factory, seed: int = 1):
    """One SGD step with the clipper attached; returns (gradients the optimizer applied, clipper)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clipper = clipper_factory(opt)
    _backward(model, seed)
    opt.step()  # the pre-hook clips .grad in place before the update
    return _grads(model), clipper


def test_clip_grad_norm_matches_torch_on_a_twin():
    model, twin = _net(), _net()
    applied, clipper = _clipped_step(model, lambda opt: clip_grad_norm(opt, max_norm=0.1))
    _backward(twin)
    raw = _grads(twin)
    total = nn.utils.clip_grad_norm_(twin.parameters(), 0.1)
    assert total > 0.5  # clipping was active
    _assert_same(applied, _grads(twin), rtol=1e-12, atol=0)
    torch.testing.assert_close(clipper.last_total_norm, _global_norm(raw))
    torch.testing.assert_close(_global_norm(applied), torch.tensor(0.1, dtype=torch.float64), rtol=1e-5, atol=0)
    # the step used the clipped gradients: SGD moved each weight by -lr * clipped grad
    _assert_same([p.detach() for p in model.parameters()],
                 [p.detach() - 0.1 * g for p, g in zip(twin.parameters(), _grads(twin))], rtol=1e-12, atol=1e-15)


def test_clip_grad_value_matches_torch_on_a_twin():
    model, twin = _net(), _net()
    applied, clipper = _clipped_step(model, lambda opt: clip(opt, "value", clip_value=0.05))
    _backward(twin)
    raw = _grads(twin)
    nn.utils.clip_grad_value_(twin.parameters(), 0.05)
    assert any((g.abs() > 0.05).any() for g in raw) and any((g.abs() < 0.05).any() for g in raw)
    _assert_same(applied, _grads(twin), rtol=0, atol=0)
    torch.testing.assert_close(clipper.last_total_norm, _global_norm(raw))


def _agc_reference(params, grads, clipping, eps, skip):
    """AGC from the paper, unit by unit: G_i <- λ max(|W_i|, eps) / |G_i| G_i when |G_i| / max(|W_i|, eps) > λ."""
    out, clipped, kept = [], 0, 0
    for w, g in zip(params, grads):
        g = g.clone()
        if id(w) not in skip:
            units = range(w.shape[0]) if w.dim() > 1 else [slice(None)]
            for i in units:
                w_norm = max(float(torch.linalg.vector_norm(w[i].detach())), eps)
                g_norm = float(torch.linalg.vector_norm(g[i]))
                if g_norm / w_norm > clipping:
                    g[i] = clipping * w_norm / g_norm * g[i]
                    clipped += 1
                else:
                    kept += 1
        out.append(g)
    return out, clipped, kept


@pytest.mark.parametrize("with_model", [False, True])
def test_adaptive_clip_matches_the_paper_rowwise_and_excludes_the_classifier(with_model):
    model, twin = _net(), _net()
    with torch.no_grad():  # a dead unit (zero weights, as after zero init): its limit is clipping * eps
        model[0].weight[0] = 0.0
        twin[0].weight[0] = 0.0
    clipping = 0.3
    applied, clipper = _clipped_step(
        model, lambda opt: adaptive_clip(opt, clipping=clipping, model=model if with_model else None)
    )
    _backward(twin)
    raw = _grads(twin)
    head = twin[-1]
    expected, clipped, kept = _agc_reference(
        list(twin.parameters()), raw, clipping, 1e-3, {id(head.weight), id(head.bias)}
    )
    assert clipped > 0 and kept > 0  # both branches of the rule are exercised
    _assert_same(applied, expected, rtol=1e-10, atol=1e-14)
    _assert_same(applied[-2:], raw[-2:], rtol=0, atol=0)  # the classifier's gradients are untouched
    torch.testing.assert_close(clipper.last_total_norm, _global_norm(raw))


def test_adaptive_clip_with_model_finds_the_last_linear_not_the_last_matrix():
    torch.manual_seed(0)
    model = nn.ModuleDict({"body": nn.Linear(4, 6), "head": nn.Linear(6, 2), "table": nn.Embedding(5, 4)}).double()
    twin = copy.deepcopy(model)

    def run(m, **kwargs):
        opt = torch.optim.SGD(m.parameters(), lr=0.0)
        adaptive_clip(opt, clipping=1e-3, **kwargs)
        ids = torch.tensor([0, 3])
        m["head"](torch.tanh(m["body"](m["table"](ids)))).pow(2).sum().mul(100).backward()
        raw = _grads(m)
        opt.step()
        return raw, _grads(m)

    raw, applied = run(model, model=model)
    unchanged = [torch.equal(a, r) for a, r in zip(applied, raw)]
    assert unchanged == [False, False, True, True, False]  # body, head (excluded), embedding
    raw, applied = run(twin, exclude=lambda p: p.dim() == 1)  # a predicate: every bias and vector
    assert [torch.equal(a, r) for a, r in zip(applied, raw)] == [False, True, False, True, False]


def test_remove_and_context_manager_restore_unclipped_steps():
    model, twin = _net(), _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with clip_grad_value(opt, 1e-4) as clipper:
        _backward(model)
        opt.step()
        assert max(float(p.grad.abs().max()) for p in model.parameters()) <= 1e-4
    clipper.remove()  # removing twice is harmless
    twin.load_state_dict(model.state_dict())
    _backward(model, seed=2)
    opt.step()
    _backward(twin, seed=2)
    raw = _grads(twin)
    _assert_same(_grads(model), raw, rtol=0, atol=0)
    assert max(float(g.abs().max()) for g in raw) > 1e-4


def test_a_broken_clipper_warns_once_and_training_goes_on():
    model, twin = _net(), _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.1)

    def broken(p):
        raise RuntimeError("predicate exploded")

    clipper = adaptive_clip(opt, exclude=broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(3):
            for m, o in ((model, opt), (twin, twin_opt)):
                _backward(m, seed)
                o.step()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "predicate exploded" in messages[0]
    assert clipper.disabled
    _assert_same(list(model.parameters()), list(twin.parameters()), rtol=0, atol=0)  # unclipped training


def test_clip_rejects_unknown_methods_and_misplaced_options():
    opt = torch.optim.SGD(_net().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        clip(opt, "spectral")
    with pytest.raises(ValueError, match="agc"):
        clip(opt, "norm", exclude=())
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        clip(opt, "norm", max_norm=0)
    with pytest.raises(TypeError, match="Optimizer"):
        clip_grad_norm(_net(), 1.0)


@pytest.mark.parametrize("clip_first", [True, False])
def test_watch_records_clipped_gradients_only_when_the_clipper_was_attached_first(clip_first):
    """Step pre-hooks run in registration order: watch sees what every hook registered before it left."""
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    clipper = clip_grad_norm(opt, 0.1) if clip_first else None
    with gd.watch(model, optimizer=opt, activations=False) as run:
        clipper = clipper or clip_grad_norm(opt, 0.1)
        _backward(model)
        raw = _global_norm(_grads(model))
        opt.step()
        recorded = np.sqrt(sum(run.history("grad_norm", layer=name)[0] ** 2 for name in run.params))
    expected = 0.1 if clip_first else float(raw)
    assert float(raw) > 0.5
    assert recorded == pytest.approx(expected, rel=1e-5)
    clipper.remove()


# --------------------------------------------------------------------------------------------
# greedy_pretrain
# --------------------------------------------------------------------------------------------
def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 10), nn.Sigmoid(), nn.Sequential(nn.Linear(10, 6), nn.Tanh()), nn.Linear(6, 3)
    ).double()


def _data(n: int = 256) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, 20, dtype=torch.float64) * torch.linspace(3.0, 0.05, 20, dtype=torch.float64)


def _reconstruction_error(code: torch.Tensor, target: torch.Tensor) -> float:
    """Mean squared error of the best affine reconstruction of `target` from `code` (least squares)."""
    design = torch.cat([code, torch.ones(len(code), 1, dtype=code.dtype)], dim=1)
    solution = torch.linalg.lstsq(design, target).solution
    return float((design @ solution - target).pow(2).mean())


def test_greedy_pretrain_lowers_each_layers_reconstruction_error_and_spares_the_output_layer():
    model, x = _mlp(), _data()
    original = copy.deepcopy(model)
    model.eval()
    assert greedy_pretrain(model, inputs=x, epochs=40, lr=1e-2, batch_size=64, progress=False) is model
    assert not any(m.training for m in model.modules())  # mode restored
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert torch.equal(model[3].weight, original[3].weight) and torch.equal(model[3].bias, original[3].bias)
    assert all(p.grad is None for p in model.parameters())
    blocks = [(model[0:2], original[0:2]), (model[2], original[2])]
    h = x
    with torch.no_grad():
        for trained, untrained in blocks:
            before = _reconstruction_error(untrained(h), h)
            after = _reconstruction_error(trained(h), h)
            assert after < 0.75 * before, (before, after)
            h = trained(h)


@pytest.mark.parametrize("one_shot", [False, True], ids=["loader", "iterator"])
def test_greedy_pretrain_reads_x_from_a_loader_of_pairs(one_shot):
    model, x = _mlp(), _data(64)
    original = copy.deepcopy(model)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x.float(), torch.zeros(64)), batch_size=32)
    inputs = iter(list(loader)) if one_shot else loader  # an iterator is kept for the later epochs
    greedy_pretrain(model, inputs=inputs, epochs=2, progress=False)  # float32 batches are moved to float64
    changed = [not torch.equal(a, b) for a, b in zip(model.parameters(), original.parameters())]
    assert changed == [True, True, True, True, False, False]


@pytest.mark.parametrize(
    "model",
    [nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)), Classifier()],
    ids=["one hidden layer", "not Sequential"],
)
def test_greedy_pretrain_not_applicable_leaves_model_identical(model):
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(NotApplicable, match="greedy_pretrain"):
        greedy_pretrain(model, inputs=torch.randn(8, 4), progress=False)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
