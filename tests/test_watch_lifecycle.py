"""gd.watch lifecycle: leaves no trace, never perturbs or crashes training, odd models, bad input, summary."""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

import gradient_doctor as gd
import gradient_doctor.probe.probe as probe_module

# -- helpers ---------------------------------------------------------------------------------

MODULE_HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


def hook_state(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Every hook a module, parameter, optimizer (or torch globally) can hold, by identity."""
    state = {}
    for name, module in model.named_modules():
        for attr in MODULE_HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks is not None:
                state[(name, attr)] = [(k, id(v)) for k, v in hooks.items()]
    for name, p in model.named_parameters():
        for attr in ("_post_accumulate_grad_hooks", "_backward_hooks"):
            hooks = getattr(p, attr, None)
            state[(name, attr)] = None if hooks is None else [(k, id(v)) for k, v in hooks.items()]
        state[(name, "requires_grad")] = p.requires_grad
    if optimizer is not None:
        for attr in ("_optimizer_step_pre_hooks", "_optimizer_step_post_hooks"):
            state[("optimizer", attr)] = [(k, id(v)) for k, v in getattr(optimizer, attr).items()]
    import torch.nn.modules.module as module_globals
    import torch.optim.optimizer as optimizer_globals

    for attr in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks"):
        state[("torch", attr)] = list(getattr(module_globals, attr, {}).keys())
    for attr in ("_global_optimizer_pre_hooks", "_global_optimizer_post_hooks"):
        state[("torch", attr)] = list(getattr(optimizer_globals, attr, {}).keys())
    return state


def count_hooks(state: dict) -> int:
    return sum(len(v) for k, v in state.items() if isinstance(v, list) and k[1] != "requires_grad")


def make_mlp(seed: int = 0, inplace: bool = False, dropout: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 12), nn.ReLU(inplace=inplace)]
    if dropout:
        layers.append(nn.Dropout(0.2))  # consumes the global RNG: any extra RNG use by the probe shows
    layers += [nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 3)]
    return nn.Sequential(*layers)


def train(model, opt, steps, run=None, seed=123):
    """Plain training loop; the data comes from the global RNG after seeding, so RNG use elsewhere shows."""
    torch.manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = torch.randn(16, 6)
        y = torch.randint(0, 3, (16,))
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if run is not None:
            run.step(loss=loss)
        losses.append(loss.item())
    return losses


def own_norm(module: nn.Module, what: str = "grad") -> float:
    total, any_ = 0.0, False
    for p in module.parameters(recurse=False):
        t = p.grad if what == "grad" else p
        if t is not None:
            total += t.detach().double().pow(2).sum().item()
            any_ = True
    return math.sqrt(total) if any_ else math.nan


def add_user_hooks(model, opt):
    """Hooks the user already had: they must survive the watch untouched."""
    model[0].register_forward_hook(lambda m, i, o: None)
    model[0].register_forward_pre_hook(lambda m, i: None)
    model[-1].register_full_backward_hook(lambda m, gi, go: None)
    opt.register_step_post_hook(lambda *a: None)
    model[0].weight.register_post_accumulate_grad_hook(lambda p: None)


# -- leaves no trace ----------------------------------------------------------------------------


def test_watch_leaves_no_trace_and_does_not_perturb_training(tmp_path):
    steps = 12
    plain = make_mlp()
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-2)
    plain_losses = train(plain, plain_opt, steps)

    model = make_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    add_user_hooks(model, opt)
    before = hook_state(model, opt)
    with gd.watch(model, opt, log_dir=tmp_path, detail_every=1, update_every=1, activation_every=1, flush_every=5) as run:
        during = hook_state(model, opt)
        losses = train(model, opt, steps, run)
        assert len(run.steps) == steps
    after = hook_state(model, opt)

    assert count_hooks(during) > count_hooks(before), "the watch attached nothing: this test would prove nothing"
    assert after == before
    assert losses == plain_losses
    plain_state, state = plain.state_dict(), model.state_dict()
    assert list(state) == list(plain_state)
    for key in state:
        assert torch.equal(state[key], plain_state[key]), key
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.equal(p.grad, q.grad)
    assert repr(opt.state_dict()) == repr(plain_opt.state_dict())
    # and the run measured something real along the way
    np.testing.assert_allclose(run.history("grad_norm", layer="5")[-1], own_norm(model[5]), rtol=1e-5)


def test_hooks_removed_when_the_block_raises(tmp_path):
    model = make_mlp(inplace=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    add_user_hooks(model, opt)
    before = hook_state(model, opt)
    with pytest.raises(RuntimeError, match="user error"):
        with gd.watch(model, opt, log_dir=tmp_path, detail_every=1, update_every=1, activation_every=1) as run:
            train(model, opt, 3, run)
            model(torch.randn(4, 6)).sum().backward()  # mid-step: activations armed, gradients pending
            raise RuntimeError("user error")
    assert hook_state(model, opt) == before
    np.testing.assert_array_equal(gd.load(tmp_path).steps, [0, 1, 2])
    with pytest.raises(gd.RunClosedError):
        run.step()


def test_hooks_removed_when_the_model_raises_in_forward(tmp_path):
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if self.calls == 3:
                raise ValueError("bad batch")
            return self.act(self.fc(x))

    model = Boom()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = hook_state(model, opt)
    with pytest.raises(ValueError, match="bad batch"):
        with gd.watch(model, opt, log_dir=tmp_path) as run:
            for _ in range(3):
                opt.zero_grad()
                model(torch.randn(2, 4)).sum().backward()
                opt.step()
    assert hook_state(model, opt) == before
    np.testing.assert_array_equal(run.steps, [0, 1])


def test_empty_block_and_close_are_clean():
    model = make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = hook_state(model, opt)
    run = gd.watch(model, opt)
    assert count_hooks(hook_state(model, opt)) > count_hooks(before)
    run.close()
    run.close()  # idempotent
    assert hook_state(model, opt) == before
    assert len(run.steps) == 0


# -- odd models ---------------------------------------------------------------------------------


def test_frozen_params(tmp_path):
    model = make_mlp(dropout=False)
    model[0].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    flags = [p.requires_grad for p in model.parameters()]
    frozen_before = model[0].weight.detach().clone()
    torch.manual_seed(1)
    expected_grad, expected_update = [], []
    with gd.watch(model, opt, log_dir=tmp_path, detail_every=1, update_every=1) as run:
        for _ in range(3):
            opt.zero_grad()
            F.mse_loss(model(torch.randn(8, 6)), torch.randn(8, 3)).backward()
            expected_grad.append(own_norm(model[2]))
            w = [p.detach().clone() for p in model[2].parameters()]
            opt.step()
            expected_update.append(math.sqrt(sum((a - b).double().pow(2).sum().item() for a, b in zip(model[2].parameters(), w))))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(model[0].weight, frozen_before)
    run = gd.load(tmp_path)
    assert run.layers == ["0", "1", "2", "3", "4"]
    grad = run.history("grad_norm")
    assert np.isnan(grad[:, 0]).all()  # frozen: no gradient
    np.testing.assert_allclose(grad[:, 2], expected_grad, rtol=1e-5)
    assert np.isnan(run.history("update_norm")[:, 0]).all()  # not in the optimizer
    np.testing.assert_allclose(run.history("update_norm")[:, 2], expected_update, rtol=1e-5)
    # weight norms include frozen layers
    np.testing.assert_allclose(run.history("weight_norm")[-1, 0], own_norm(model[0], "weight"), rtol=1e-6)


def test_tied_weights(tmp_path):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 6)
            self.act = nn.Tanh()
            self.out = nn.Linear(6, 10, bias=False)
            self.out.weight = self.emb.weight

        def forward(self, idx):
            return self.out(self.act(self.emb(idx)))

    torch.manual_seed(0)
    model = Tied()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = hook_state(model, opt)
    expected = []
    with gd.watch(model, opt, log_dir=tmp_path) as run:
        for _ in range(3):
            idx = torch.randint(0, 10, (5,))
            opt.zero_grad()
            F.cross_entropy(model(idx), idx).backward()
            expected.append(model.emb.weight.grad.double().norm().item())
            opt.step()
    assert hook_state(model, opt) == before
    assert model.out.weight is model.emb.weight
    run = gd.load(tmp_path)
    assert run.layers == ["emb", "act", "out"]
    assert run.params == ["emb.weight"]  # one tensor, counted once
    grad = run.history("grad_norm")
    # both owners report the shared tensor's full (accumulated) gradient
    np.testing.assert_allclose(grad[:, 0], expected, rtol=1e-5)
    np.testing.assert_allclose(grad[:, 2], expected, rtol=1e-5)


def test_parameter_free_modules_are_skipped_or_activation_layers(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Flatten(), nn.Identity(), nn.Linear(8, 5), nn.Dropout(0.1), nn.Sigmoid(), nn.Sequential(nn.Linear(5, 2))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = hook_state(model, opt)
    x = torch.randn(4, 2, 4)
    with gd.watch(model, opt, log_dir=tmp_path, activation_every=1) as run:
        opt.zero_grad()
        torch.manual_seed(3)
        model(x).sum().backward()
        expected_grad = own_norm(model[5][0])
        opt.step()
    assert hook_state(model, opt) == before
    with torch.no_grad():  # the same forward by hand, with the same dropout mask
        torch.manual_seed(3)
        expected_sig = torch.sigmoid(F.dropout(F.linear(x.flatten(1), *_before_step(model, opt)), 0.1)).double()
    run = gd.load(tmp_path)
    assert run.layers == ["2", "4", "5.0"]  # Flatten, Identity, Dropout, containers are not layers
    np.testing.assert_allclose(run.history("act_mean", layer="4"), [expected_sig.mean().item()], rtol=1e-6)
    np.testing.assert_allclose(run.history("grad_norm", layer="5.0"), [expected_grad], rtol=1e-5)


def _before_step(model, opt):
    """Layer 2's weight and bias before the single SGD step (undo it: w_before = w + lr * g)."""
    lr = opt.param_groups[0]["lr"]
    return model[2].weight + lr * model[2].weight.grad, model[2].bias + lr * model[2].bias.grad


def test_batchnorm_buffers(tmp_path):
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    plain = make()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.05)
    torch.manual_seed(9)
    for _ in range(4):
        plain_opt.zero_grad()
        plain(torch.randn(16, 4)).pow(2).mean().backward()
        plain_opt.step()

    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    torch.manual_seed(9)
    with gd.watch(model, opt, log_dir=tmp_path, detail_every=1, activation_every=1, update_every=1) as run:
        for _ in range(4):
            opt.zero_grad()
            model(torch.randn(16, 4)).pow(2).mean().backward()
            opt.step()
    for key, value in plain.state_dict().items():  # running stats and num_batches_tracked included
        assert torch.equal(model.state_dict()[key], value), key
    assert model[1].num_batches_tracked.item() == 4
    run = gd.load(tmp_path)
    assert run.layers == ["0", "1", "2", "3"]
    # a BatchNorm layer's weight norm is over weight and bias only, not its running statistics
    bn = model[1]
    expected = math.sqrt(bn.weight.double().pow(2).sum().item() + bn.bias.double().pow(2).sum().item())
    np.testing.assert_allclose(run.history("weight_norm", layer="1")[-1], expected, rtol=1e-6)
    assert [d.numel for d in run.layer_details][1] == 16


def test_inplace_relu(tmp_path):
    model = make_mlp(inplace=True, dropout=False)
    plain = make_mlp(inplace=True, dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    torch.manual_seed(4)
    expected = []
    with gd.watch(model, opt, log_dir=tmp_path, activation_every=1) as run:
        for _ in range(3):
            x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
            with torch.no_grad():
                h = F.relu(model[0](x)).double()
            expected.append([h.mean().item(), h.std(unbiased=False).item(), (h == 0).double().mean().item(),
                             (h.amax(0) == 0).double().mean().item()])
            for m, o in ((model, opt), (plain, plain_opt)):
                o.zero_grad()
                F.cross_entropy(m(x), y).backward()
                o.step()
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.equal(p, q)
    run = gd.load(tmp_path)
    got = np.stack([run.history(m, layer="1") for m in ("act_mean", "act_std", "zero_frac", "dead_frac")], 1)
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-6, atol=1e-9)


# -- bad input ----------------------------------------------------------------------------------


def test_not_a_module():
    with pytest.raises(TypeError, match="nn.Module") as err:
        gd.watch([nn.Linear(2, 2)])
    assert "list" in str(err.value)
    with pytest.raises(TypeError, match="function"):
        gd.watch(lambda x: x)


def test_bad_optimizer():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Optimizer") as err:
        gd.watch(model, {"lr": 0.1})
    assert "dict" in str(err.value)
    with pytest.raises(TypeError, match="Optimizer"):
        gd.watch(model, model.parameters())


def test_no_trainable_params():
    with pytest.raises(ValueError, match="no trainable parameters"):
        gd.watch(nn.ReLU())
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="Linear"):
        gd.watch(frozen)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"every": 0}, "every"), ({"every": -1}, "every"), ({"update_every": -1}, "update_every"),
        ({"detail_every": -2}, "detail_every"), ({"detail_every": 2.0}, "detail_every"),
        ({"activation_every": -5}, "activation_every"), ({"flush_every": 0}, "flush_every"),
        ({"every": 1.5}, "every"), ({"every": True}, "every"), ({"update_every": "10"}, "update_every"),
    ],
)
def test_bad_cadences(kwargs, name):
    model = nn.Linear(2, 2)
    before = hook_state(model)
    with pytest.raises(ValueError, match=name):
        gd.watch(model, **kwargs)
    assert hook_state(model) == before


def test_activation_hooks_exist_only_on_activation_steps():
    """Steps that do not measure activations run the model with no forward hooks at all."""
    model = make_mlp(dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    relu, tanh = model[1], model[3]
    hooked = []
    with gd.watch(model, opt, activation_every=3) as run:
        for step in range(7):
            hooked.append((len(relu._forward_hooks), len(tanh._forward_hooks)))
            train(model, opt, 1, run, seed=step)
    assert hooked == [(1, 1), (0, 0), (0, 0), (1, 1), (0, 0), (0, 0), (1, 1)]
    assert len(relu._forward_hooks) == 0 and len(tanh._forward_hooks) == 0
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(run.history("act_std", layer="1"))), [0, 3, 6])


def test_zero_cadences_switch_groups_off():
    model = make_mlp(dropout=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, detail_every=0, update_every=0, activation_every=0) as run:
        train(model, opt, 2, run)
    for metric in ("grad_max", "grad_zero_frac", "weight_norm", "update_norm"):
        assert np.isnan(run.history(metric)).all(), metric
    assert np.isnan(run.history("act_mean")).all()
    assert not np.isnan(run.history("grad_norm", layer="0")).any()


def test_step_after_close():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        pass
    with pytest.raises(gd.RunClosedError, match="closed"):
        run.step(loss=1.0)
    with gd.watch(model) as run2:
        pass
    with pytest.raises(gd.RunClosedError):
        run2.step()


def test_step_before_first_optimizer_step_is_a_skipped_step_not_a_crash():
    """GradScaler often skips the very first optimizer steps: run.step() must not raise there."""
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        loss = model(torch.randn(3, 2)).sum()
        loss.backward()
        with pytest.warns(RuntimeWarning, match="skipped step"):
            run.step(loss=loss)  # no optimizer step yet: counted as skipped, attached nowhere
        opt.step()
        run.step(loss=loss)
    np.testing.assert_array_equal(run.steps, [0])
    np.testing.assert_array_equal(run.history("loss"), [loss.item()])
    np.testing.assert_array_equal(run.history("skipped"), [1.0])


def test_several_step_calls_after_one_optimizer_step_attach_to_it():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no skipped-step warning: no forward pass between the calls
        with gd.watch(model, opt) as run:
            for k in range(2):
                opt.zero_grad()
                model(torch.randn(3, 2)).sum().backward()
                opt.step()
                run.step(loss=float(k))
                run.step(acc=0.5 + k)
    np.testing.assert_array_equal(run.history("loss"), [0.0, 1.0])
    np.testing.assert_array_equal(run.history("acc"), [0.5, 1.5])
    assert "skipped" not in run.metrics


def test_step_with_non_scalar_or_non_number():
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        model(torch.randn(3, 2)).sum().backward()
        opt.step()
        with pytest.raises(ValueError, match=r"'loss'.*\(3,\)"):
            run.step(loss=torch.ones(3))
        with pytest.raises(ValueError, match="acc"):
            run.step(acc=torch.ones(2, 2))
        with pytest.raises(TypeError, match="str"):
            run.step(acc="high")
        with pytest.raises(TypeError, match="'acc'"):  # a valid loss next to a bad metric
            run.step(loss=0.5, acc="high")
    # a failed call attached nothing
    assert "acc" not in run.metrics and "loss" not in run.metrics


# -- never crash training -----------------------------------------------------------------------


def test_internal_error_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    real = probe_module.gradient_blocks
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:  # steps 0 and 1 are measured, then the probe breaks
            raise RuntimeError("simulated probe bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(probe_module, "gradient_blocks", failing)
    steps = 8
    plain = make_mlp()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    plain_losses = train(plain, plain_opt, steps)

    model = make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = hook_state(model, opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gd.watch(model, opt, log_dir=tmp_path, flush_every=2, activation_every=1) as run:
            losses = train(model, opt, steps, run)
            assert run._probe.step == steps  # steps are still counted after the failure
    ours = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "simulated probe bug" in str(ours[0].message)
    assert calls["n"] == 3  # switched off: never called again
    assert losses == plain_losses
    for p, q in zip(model.parameters(), plain.parameters()):
        assert torch.equal(p, q)
    assert hook_state(model, opt) == before
    run = gd.load(tmp_path)
    np.testing.assert_array_equal(run.steps, np.arange(steps))  # later steps are recorded, with nothing measured
    np.testing.assert_array_equal(run.history("loss"), plain_losses)
    grad_norm = run.history("grad_norm")
    assert np.isfinite(grad_norm[:2, 0]).all() and np.isnan(grad_norm[2:]).all()


def test_error_in_activation_hook_does_not_break_forward(tmp_path, monkeypatch):
    from gradient_doctor.probe.activations import ActivationProbe

    def boom(self, index, output, spec):
        raise RuntimeError("simulated activation bug")

    monkeypatch.setattr(ActivationProbe, "_measure", boom)
    model = make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    plain = make_mlp()
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    before = hook_state(model, opt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with gd.watch(model, opt, activation_every=1) as run:
            losses = train(model, opt, 4, run)
    ours = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(ours) == 1 and "activation statistics" in ours[0] and "simulated activation bug" in ours[0]
    assert losses == train(plain, plain_opt, 4)
    assert hook_state(model, opt) == before
    # only the activation statistics stop: every step's gradient norms are still recorded
    assert np.isfinite(run.history("grad_norm")[:, 0]).all() and np.isnan(run.history("act_mean")).all()


# -- summary ------------------------------------------------------------------------------------


def test_summary_table(tmp_path):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(6, 12)
            self.squash = nn.Sigmoid()
            self.decoder = nn.Linear(12, 3)

        def forward(self, x):
            return self.decoder(self.squash(self.encoder(x)))

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=tmp_path) as run:
        train(model, opt, 2, run)
        live_table = run.summary()
    expected_grad = own_norm(model.decoder)
    for table in (live_table, gd.load(tmp_path).summary()):
        assert isinstance(table, Table)
        assert table.row_count == 3
        console = Console(record=True, width=200, file=io.StringIO())
        console.print(table)
        text = console.export_text()
        for name in ("encoder", "squash", "decoder", "Linear", "Sigmoid"):
            assert name in text
        assert text.index("encoder") < text.index("squash") < text.index("decoder")
        decoder_line = next(line for line in text.splitlines() if "decoder" in line)
        numbers = [float(t) for t in re.findall(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?", decoder_line)]
        # the gradient norm is shown, rounded to 3 significant digits
        assert any(math.isclose(n, expected_grad, rel_tol=5e-3) for n in numbers), (expected_grad, decoder_line)
