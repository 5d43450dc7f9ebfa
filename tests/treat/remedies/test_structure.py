"""Architectural remedies: insert_norm (and its batch-norm guard), add_residual/rezero/fixup, normalize_inputs,
reduce_depth. Every expected value is computed independently with plain torch modules or from theory."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from gradient_doctor.errors import NotApplicable, UnsafeRemedy
from gradient_doctor.treat.remedies.depth import reduce_depth
from gradient_doctor.treat.remedies.inputs import normalize_inputs
from gradient_doctor.treat.remedies.norm import insert_norm
from gradient_doctor.treat.remedies.residual import add_residual, fixup, rezero
from gradient_doctor.treat.surgery.inserted import FeatureBatchNorm, Highway, Residual, Standardize
from gradient_doctor.treat.surgery.skips import has_skip_connection


def mlp(depth: int, width: int = 8, n_in: int = 3, n_out: int = 2, act=nn.ReLU) -> nn.Sequential:
    """Linear(n_in, width), act, (Linear(width, width), act) * (depth - 2), Linear(width, n_out)."""
    layers = [nn.Linear(n_in, width), act()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), act()]
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def snapshot(model: nn.Module) -> tuple[str, dict[str, torch.Tensor]]:
    return repr(model), {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model: nn.Module, before: tuple[str, dict[str, torch.Tensor]]) -> None:
    text, state = before
    assert repr(model) == text
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def batch_norm(h: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Training-mode batch norm at init (weight 1, bias 0), written out."""
    mean = h.mean(dim=dims, keepdim=True)
    var = h.var(dim=dims, unbiased=False, keepdim=True)
    return (h - mean) / torch.sqrt(var + 1e-5)


class PlainBlock(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.f = nn.Linear(d, d)

    def forward(self, x):
        return torch.relu(self.f(x))


class AddsInput(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.f = nn.Linear(d, d)

    def forward(self, x):
        return x + torch.relu(self.f(x))


class AliasedSkip(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.f = nn.Linear(d, d)

    def forward(self, inp):
        identity = inp
        out = self.f(inp)
        out += identity
        return out


class AddsBias(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.f = nn.Linear(d, d)
        self.shift = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return self.f(x + self.shift)


class AttributeMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(3, 8), nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Holder(nn.Module):
    """A custom module holding the Sequential: remedies must reach nested containers."""

    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x)


# ---------------------------------------------------------------------------------------------- insert_norm


def test_insert_norm_batch_norm_kinds_and_placement():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU()),
        nn.Sequential(nn.Conv2d(2, 5, 3), nn.BatchNorm2d(5), nn.ReLU()),   # already normalised
        nn.Sequential(nn.Conv3d(2, 6, 1), nn.ReLU()),
        nn.Linear(4, 7), nn.Tanh(),
        nn.Linear(7, 3),                                                    # the output layer
    )
    conv2d_norm = model[1][1]
    insert_norm(model, "batch", allow_without_skip=False)
    assert isinstance(model[0][0], nn.Sequential) and type(model[0][0][1]) is nn.BatchNorm1d
    assert model[0][0][1].num_features == 4
    assert isinstance(model[1][0], nn.Conv2d) and model[1][1] is conv2d_norm
    assert type(model[2][0][1]) is nn.BatchNorm3d and model[2][0][1].num_features == 6
    assert isinstance(model[3][1], FeatureBatchNorm) and isinstance(model[3][1], nn.BatchNorm1d)
    assert model[3][1].num_features == 7
    assert isinstance(model[5], nn.Linear)


def test_insert_norm_layer_kinds():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 6), nn.ReLU(),
                          nn.Linear(6, 1))
    insert_norm(model, "layer")
    assert isinstance(model[0][1], nn.GroupNorm) and model[0][1].num_groups == 1 and model[0][1].num_channels == 4
    assert isinstance(model[3][1], nn.LayerNorm) and model[3][1].normalized_shape == (6,)
    assert model(torch.randn(3, 2, 5, 5)).shape == (3, 1)


def test_insert_norm_output_matches_hand_written_batch_norm_and_keys_move_under_0():
    torch.manual_seed(1)
    model = mlp(4, width=16)
    original = copy.deepcopy(model)
    insert_norm(model, "batch")
    x = torch.randn(32, 3)
    h = x
    for k in (0, 2, 4):
        h = torch.relu(batch_norm(original[k](h), dims=(0,)))
    expected = original[6](h)
    torch.testing.assert_close(model(x), expected)
    new_state = model.state_dict()
    for key, value in original.state_dict().items():
        index, _, rest = key.partition(".")
        moved = f"{index}.0.{rest}" if index in ("0", "2", "4") else key
        assert torch.equal(new_state[moved], value)
    assert [type(m) for m in model] == [nn.Sequential, nn.ReLU] * 3 + [nn.Linear]


def test_feature_batch_norm_normalises_the_last_dimension_of_sequences():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 1))    # (batch, time, features) inputs
    original = copy.deepcopy(model)
    insert_norm(model, "batch")
    x = torch.randn(4, 5, 5)                 # time == features: nn.BatchNorm1d would silently use time as channels
    expected = original[2](torch.relu(batch_norm(original[0](x), dims=(0, 1))))
    torch.testing.assert_close(model(x), expected)


def test_insert_norm_reaches_nested_containers_float64_and_keeps_the_mode():
    torch.manual_seed(3)
    model = Holder(mlp(3, width=6)).double().eval()
    insert_norm(model, "batch")
    norm = model.body[0][1]
    assert norm.weight.dtype == torch.float64 and norm.running_mean.dtype == torch.float64
    assert not norm.training and not model.body[0].training
    assert model(torch.randn(5, 3, dtype=torch.float64)).dtype == torch.float64


def test_insert_norm_is_idempotent_and_not_applicable_leaves_model_identical():
    model = mlp(3)
    insert_norm(model, "layer")
    before = snapshot(model)
    with pytest.raises(NotApplicable, match="insert_norm"):
        insert_norm(model, "batch")
    assert_unchanged(model, before)


def test_insert_norm_leaves_attribute_layers_alone():
    model = AttributeMLP()
    before = snapshot(model)
    with pytest.raises(NotApplicable, match="nn.Sequential"):
        insert_norm(model, "layer")
    assert_unchanged(model, before)


def test_insert_norm_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="'batch' or 'layer'"):
        insert_norm(mlp(3), "group")


# ------------------------------------------------------------------------------------------- batch-norm guard


def test_guard_refuses_batch_norm_in_a_deep_plain_relu_mlp_and_leaves_it_unchanged():
    model = mlp(20)
    before = snapshot(model)
    with pytest.raises(UnsafeRemedy, match="allow_without_skip=True"):
        insert_norm(model, "batch")
    assert_unchanged(model, before)


def test_guard_warns_and_inserts_with_allow_without_skip():
    model = mlp(20)
    with pytest.warns(UserWarning, match="Yang et al. 2019"):
        insert_norm(model, "batch", allow_without_skip=True)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 19


def test_guard_passes_silently_on_shallow_nets_layer_norm_and_residual_models():
    models = [mlp(10), add_residual(mlp(20)), nn.Sequential(*[AddsInput(8) for _ in range(6)],
                                                            *[nn.Linear(8, 8) for _ in range(12)])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for model in models:
            insert_norm(model, "batch")
        insert_norm(mlp(20), "layer")


def test_skip_detection():
    assert not has_skip_connection(mlp(4))
    assert not has_skip_connection(nn.Sequential(PlainBlock(4), AddsBias(4)))
    assert has_skip_connection(nn.Sequential(PlainBlock(4), AddsInput(4)))
    assert has_skip_connection(nn.Sequential(AliasedSkip(4)))
    assert has_skip_connection(add_residual(mlp(4)))
    assert has_skip_connection(nn.TransformerEncoderLayer(8, 2))


def test_batch_norm_without_skips_grows_the_gradient_by_the_mean_field_rate_and_layer_norm_does_not():
    """Yang et al. 2019: sqrt(pi / (pi - 1)) ~= 1.21 per layer in norm for a batch-normalised ReLU net at init."""
    def growth(kind: str) -> float:
        torch.manual_seed(4)
        model = mlp(20, width=128, n_in=128, n_out=10)
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            insert_norm(model, kind, allow_without_skip=True)
        out = model(torch.randn(128, 128))
        (out * torch.randn_like(out)).sum().backward()
        norms = [m.weight.grad.norm() for m in model.modules() if isinstance(m, nn.Linear)]
        return float((norms[0] / norms[-2]) ** (1 / (len(norms) - 2)))

    assert growth("batch") == pytest.approx(math.sqrt(math.pi / (math.pi - 1)), abs=0.04)
    assert growth("layer") < 1.08


# ------------------------------------------------------------------------------------------------ add_residual


def test_add_residual_with_zero_scale_is_the_identity_over_the_wrapped_blocks():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(),
                          nn.Dropout(0.0), nn.Linear(8, 2))
    original = copy.deepcopy(model)
    add_residual(model)
    assert isinstance(model[2], Residual) and isinstance(model[4], Residual)
    assert [type(m) for m in model[4].branch] == [nn.Linear, nn.Tanh, nn.Dropout]
    assert all(isinstance(model[k], nn.Identity) for k in (3, 5, 6)) and isinstance(model[7], nn.Linear)
    x = torch.randn(10, 3)
    torch.testing.assert_close(model(x), original[7](original[1](original[0](x))))


def test_add_residual_with_a_scale_computes_x_plus_scale_times_block_and_renames_keys():
    torch.manual_seed(6)
    model = mlp(4)
    original = copy.deepcopy(model)
    add_residual(model, branch_scale=0.5)
    x = torch.randn(10, 3)
    h = original[1](original[0](x))
    for k in (2, 4):
        h = h + 0.5 * original[k + 1](original[k](h))
    torch.testing.assert_close(model(x), original[6](h))
    state = model.state_dict()
    assert torch.equal(state["2.branch.0.weight"], original[2].weight)
    assert torch.equal(state["0.weight"], original[0].weight) and torch.equal(state["6.weight"], original[6].weight)
    assert state["2.scale"].item() == 0.5


def test_add_residual_conv_shape_preservation_from_declared_sizes():
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),                 # wrapped
        nn.Conv2d(4, 4, 5, padding="same", dilation=2), nn.ReLU(),   # wrapped
        nn.Conv2d(4, 4, 3), nn.ReLU(),                            # shrinks: no
        nn.Conv2d(4, 4, 3, padding=1, stride=2), nn.ReLU(),       # strided: no
        nn.Conv2d(4, 4, (3, 1), padding=1), nn.ReLU(),            # widens the last axis by 2: no
        nn.Conv2d(4, 6, (1, 3)), nn.ReLU(),                       # channels change: no
        nn.Flatten(), nn.Linear(6 * 3 * 3, 2),
    )
    x = torch.randn(2, 4, 7, 7)
    shape = model(x).shape
    add_residual(model)
    assert [k for k, m in enumerate(model) if isinstance(m, Residual)] == [0, 2]
    assert model(x).shape == shape


def test_add_residual_wraps_a_sequential_unit_whole_and_reaches_nested_containers():
    body = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)), nn.ReLU(),
                         nn.Linear(8, 2))
    model = Holder(body)
    add_residual(model)
    assert isinstance(body[2], Residual) and isinstance(body[2].branch[0], nn.Sequential)
    assert isinstance(body[3], nn.Identity)


def test_add_residual_float64_highway_gate_and_output():
    torch.manual_seed(7)
    model = mlp(3).double()
    original = copy.deepcopy(model)
    add_residual(model, highway=True)
    block = model[2]
    assert isinstance(block, Highway) and block.gate.weight.dtype == torch.float64
    assert torch.equal(block.gate.bias, torch.full((8,), -2.0, dtype=torch.float64))
    with torch.no_grad():
        block.gate.weight.zero_()
    x = torch.randn(6, 3, dtype=torch.float64)
    h = original[1](original[0](x))
    t = torch.sigmoid(torch.tensor(-2.0, dtype=torch.float64))
    expected = original[4](t * original[3](original[2](h)) + (1 - t) * h)
    torch.testing.assert_close(model(x), expected)


def test_highway_over_convolutions_gates_channels():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 1, 1))
    add_residual(model, highway=True)
    assert isinstance(model[0].gate, nn.Conv2d) and model[0].gate.kernel_size == (1, 1)
    assert model(torch.randn(2, 3, 5, 5)).shape == (2, 1, 5, 5)


def test_add_residual_not_applicable_and_idempotent():
    for model in (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)),
                  nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8))):   # the output layer is never wrapped
        before = snapshot(model)
        with pytest.raises(NotApplicable, match="add_residual"):
            add_residual(model)
        assert_unchanged(model, before)
    model = add_residual(mlp(4))
    before = snapshot(model)
    with pytest.raises(NotApplicable):
        add_residual(model)
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="branch_scale"):
        add_residual(mlp(4), highway=True, branch_scale=0.1)


# ------------------------------------------------------------------------------------------------ rezero / fixup


def test_rezero_zeroes_existing_branch_scales():
    torch.manual_seed(8)
    model = mlp(5)
    original = copy.deepcopy(model)
    add_residual(model, branch_scale=1.0)
    rezero(model)
    assert all(m.scale.item() == 0.0 for m in model.modules() if isinstance(m, Residual))
    x = torch.randn(4, 3)
    torch.testing.assert_close(model(x), original[8](original[1](original[0](x))))
    plain = mlp(3)
    before = snapshot(plain)
    with pytest.raises(NotApplicable, match="rezero"):
        rezero(plain)
    assert_unchanged(plain, before)


def test_fixup_scales_branches_by_depth_and_zeroes_their_last_layer():
    torch.manual_seed(9)
    n_blocks, d = 16, 6   # m = 3 weight layers per branch: factor 16^(-1/4) = 0.5
    model = nn.Sequential(*[Residual(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d), nn.ReLU(),
                                                   nn.Linear(d, d)), scale=0.0) for _ in range(n_blocks)],
                          nn.Linear(d, 1))
    original = copy.deepcopy(model)
    fixup(model)
    for block, before in zip(model[:n_blocks], original[:n_blocks]):
        for k in (0, 2):
            torch.testing.assert_close(block.branch[k].weight, before.branch[k].weight * 0.5)
            assert torch.equal(block.branch[k].bias, before.branch[k].bias)
        assert not block.branch[4].weight.any() and not block.branch[4].bias.any()
        assert block.scale.item() == 1.0
    assert torch.equal(model[-1].weight, original[-1].weight)     # the classifier is not zeroed
    x = torch.randn(5, d)
    torch.testing.assert_close(model(x), original[-1](x))         # every branch starts at 0
    model(x).sum().backward()
    assert all(block.branch[4].weight.grad.any() for block in model[:n_blocks])   # ... and can still learn


def test_fixup_on_branches_ending_in_an_activation_keeps_them_learnable():
    torch.manual_seed(10)
    model = add_residual(mlp(6), branch_scale=1.0)
    original = copy.deepcopy(model)
    fixup(model)
    wrappers = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(wrappers) == 4
    for wrapper, before in zip(wrappers, [m for m in original.modules() if isinstance(m, Residual)]):
        assert torch.equal(wrapper.branch[0].weight, before.branch[0].weight)   # m = 1: nothing to scale
        assert wrapper.scale.item() == 0.0
    x = torch.randn(8, 3)
    model(x).sum().backward()
    assert all(w.scale.grad.abs() > 0 for w in wrappers)
    with pytest.raises(NotApplicable, match="fixup"):
        fixup(mlp(3))


# --------------------------------------------------------------------------------------------- normalize_inputs


def test_normalize_inputs_standardises_the_first_layers_input():
    torch.manual_seed(11)
    x = torch.randn(256, 6) * torch.tensor([1.0, 5.0, 0.1, 20.0, 2.0, 3.0]) + torch.tensor([100.0, -3, 0, 7, 1, 50])
    inner = mlp(3, n_in=6)
    original = copy.deepcopy(inner)
    model = normalize_inputs(inner, inputs=x)
    assert isinstance(model[0], Standardize) and model[1] is inner
    seen = []
    inner[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    out = model(x)
    first = seen[0]
    assert first.mean(dim=0).abs().max() < 1e-4
    torch.testing.assert_close(first.std(dim=0, unbiased=False), torch.ones(6), atol=1e-3, rtol=0)
    z = (x - x.mean(dim=0)) / x.std(dim=0, unbiased=False)
    torch.testing.assert_close(out, original(z), atol=1e-4, rtol=1e-4)


def test_normalize_inputs_per_entry_of_a_sample_float64_and_constant_features():
    torch.manual_seed(12)
    x = torch.randn(64, 2, 5, dtype=torch.float64) * 3 + 1
    x[:, 1, 4] = 7.0                                                  # a constant feature: no division by zero
    model = normalize_inputs(nn.Sequential(nn.Conv1d(2, 3, 1)).double(), inputs=x)
    assert model[0].mean.dtype == torch.float64 and model[0].mean.shape == (2, 5)
    assert normalize_inputs(nn.Linear(3, 1).double(), inputs=torch.randn(4, 3))[0].std.dtype == torch.float64
    z = model[0](x)
    assert torch.isfinite(z).all() and not z[:, 1, 4].any()
    torch.testing.assert_close(z[:, 0, 0], (x[:, 0, 0] - x[:, 0, 0].mean()) / x[:, 0, 0].std(unbiased=False),
                               atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"samples of shape \(2, 5\)"):
        model(torch.randn(4, 2, 6, dtype=torch.float64))


def test_a_feature_constant_on_the_batch_is_scaled_by_the_batchs_typical_std():
    torch.manual_seed(14)
    x = 255 * torch.rand(64, 4)
    x[:, 3] = 0.0  # e.g. a border pixel, 0 in every image of this batch and not in later ones
    model = normalize_inputs(nn.Linear(4, 1), inputs=x)
    typical = x[:, :3].var(dim=0, unbiased=False).sum() / 4  # the mean of the four variances, one of them 0
    later = torch.tensor([[100.0, 100.0, 100.0, 255.0]])
    z = model[0](later)
    torch.testing.assert_close(z[0, 3], torch.tensor(255.0) / (typical + 1e-5).sqrt(), rtol=1e-5, atol=0)
    assert z[0, 3].abs() < 10  # not 255 / sqrt(1e-5) = 8e4
    torch.testing.assert_close(z[0, 0], (100 - x[:, 0].mean()) / x[:, 0].std(unbiased=False), rtol=1e-4, atol=1e-5)


def test_normalize_inputs_refuses_what_it_cannot_standardise():
    model = mlp(3)
    before = snapshot(model)
    x = torch.randn(8, 3)
    for inputs in ((x,), [x], {"x": x}, torch.randint(0, 5, (8, 3))):
        with pytest.raises(NotApplicable, match="normalize_inputs"):
            normalize_inputs(model, inputs=inputs)
    with pytest.raises(ValueError, match="at least 2 samples"):
        normalize_inputs(model, inputs=x[:1])
    with pytest.raises(TypeError, match="tensor"):
        normalize_inputs(model, inputs=3.0)
    assert_unchanged(model, before)
    with pytest.raises(NotApplicable, match="already"):
        normalize_inputs(normalize_inputs(model, inputs=x), inputs=x)


# ------------------------------------------------------------------------------------------------- reduce_depth


def test_reduce_depth_drops_middle_blocks_of_the_longest_stack():
    torch.manual_seed(13)
    encoder = mlp(4)[:-1]                 # 2 shape-preserving blocks
    decoder = mlp(12, width=16, n_in=8)   # 10 shape-preserving blocks
    model = nn.Sequential(Holder(encoder), Holder(decoder))
    original = copy.deepcopy(model)
    reduce_depth(model, keep=0.5)
    assert len([m for m in encoder if isinstance(m, nn.Linear)]) == 3
    kept = [k for k in range(2, 22, 2) if isinstance(decoder[k], nn.Linear)]
    assert kept == [2, 4, 6, 18, 20]       # 3 from the start, 2 from the end
    assert len(decoder) == 23
    x = torch.randn(4, 3)
    dec = original[1].body
    h = original[0](x)
    for k in [0, 1, *[j for k in kept for j in (k, k + 1)], 22]:
        h = dec[k](h)
    torch.testing.assert_close(model(x), h)


def test_reduce_depth_keep_zero_and_errors():
    model = mlp(5)
    reduce_depth(model, keep=0.0)
    assert [type(m) for m in model if not isinstance(m, nn.Identity)] == [nn.Linear, nn.ReLU, nn.Linear]
    assert model(torch.randn(2, 3)).shape == (2, 2)
    plain = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    before = snapshot(plain)
    with pytest.raises(NotApplicable, match="reduce_depth"):
        reduce_depth(plain)
    assert_unchanged(plain, before)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        reduce_depth(mlp(5), keep=1.0)
