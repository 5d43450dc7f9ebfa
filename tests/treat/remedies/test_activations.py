"""swap_activation: module replacement in nested containers, the functional-call warning, NotApplicable."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import NotApplicable
from gradient_doctor.treat.remedies.activations import swap_activation


class Block(nn.Module):
    """A custom module holding nested containers; its forward uses modules only."""

    def __init__(self, inplace: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid())
        self.body = nn.Sequential(nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 8), nn.ReLU(inplace))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(self.stem(x)))


def block_by_hand(model: Block, x: torch.Tensor, saturating, relu) -> torch.Tensor:
    """Plain-torch forward of Block's weights with its Sigmoid/Tanh applied as `saturating`, its ReLU as `relu`."""
    h = saturating(F.linear(x, model.stem[0].weight, model.stem[0].bias))
    h = saturating(F.linear(h, model.body[0][0].weight, model.body[0][0].bias))
    h = relu(F.linear(h, model.body[1].weight, model.body[1].bias))
    return F.linear(h, model.head.weight, model.head.bias)


def test_relu_replaces_saturating_modules_in_nested_containers_and_keeps_relu():
    torch.manual_seed(0)
    model = Block()
    relu = model.body[2]
    out = swap_activation(model, "relu")
    assert out is model
    assert type(model.stem[1]) is nn.ReLU and type(model.body[0][1]) is nn.ReLU
    assert model.body[2] is relu  # the target kind is never swapped with itself
    assert not model.stem[1].inplace  # Sigmoid had no inplace: the new module is not in place
    x = torch.randn(5, 6)
    torch.testing.assert_close(model(x), block_by_hand(model, x, torch.relu, torch.relu))


def test_leaky_relu_replaces_relu_too_keeping_inplace_and_slope():
    torch.manual_seed(0)
    model = Block(inplace=True)
    swap_activation(model, "leaky_relu", negative_slope=0.2)
    for act, inplace in ((model.stem[1], False), (model.body[0][1], False), (model.body[2], True)):
        assert type(act) is nn.LeakyReLU and act.negative_slope == 0.2 and act.inplace is inplace
    x = torch.randn(5, 6)
    leaky = lambda t: torch.where(t > 0, t, 0.2 * t)  # noqa: E731
    torch.testing.assert_close(model(x), block_by_hand(model, x, leaky, leaky))


@pytest.mark.parametrize(
    "to, kind",
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("prelu", nn.PReLU), ("elu", nn.ELU), ("selu", nn.SELU),
     ("gelu", nn.GELU), ("silu", nn.SiLU), ("tanh", nn.Tanh)],
)
def test_every_target_replaces_sigmoid(to, kind):
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.Softsign(), nn.Hardtanh())
    swap_activation(model, to)
    assert [type(model[i]) for i in (1, 3, 4)] == [kind] * 3


def test_tanh_target_leaves_tanh_and_relu():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 3), nn.Sigmoid(), nn.ReLU())
    tanh, relu = model[1], model[4]
    swap_activation(model, "tanh")
    assert model[1] is tanh and model[4] is relu and type(model[3]) is nn.Tanh


def test_relu6_is_a_rectifier_swapped_only_for_the_leaky_family():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU6(), nn.Sigmoid())
    relu6 = model[1]
    swap_activation(model, "relu")
    assert model[1] is relu6
    swap_activation(model, "elu")
    assert type(model[1]) is nn.ELU and type(model[2]) is nn.ELU


def test_shared_instance_becomes_one_shared_replacement():
    act = nn.Sigmoid()
    model = nn.Sequential(nn.Linear(3, 3), act, nn.Linear(3, 3), act)
    swap_activation(model, "prelu")
    assert type(model[1]) is nn.PReLU and model[1] is model[3]


def test_root_activation_is_returned_replaced():
    new = swap_activation(nn.Tanh(), "silu")
    assert type(new) is nn.SiLU


def test_float64_model_and_mode_are_preserved():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 3)).double().eval()
    swap_activation(model, "prelu")
    assert model[1].weight.dtype == torch.float64 and not model[1].training
    assert model(torch.randn(2, 3, dtype=torch.float64)).dtype == torch.float64


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), Gate())

    def forward(self, x):
        # torch.tanh(x) in a comment is not a call, nor is "x.tanh()" in a string
        return torch.sigmoid(self.inner(x)) + F.relu(x)


class Gate(nn.Module):
    def forward(self, x):
        return x * x.tanh()


def test_warns_once_naming_classes_and_functions_it_cannot_swap():
    model = Functional()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        swap_activation(model, "relu")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1
    assert "Functional.forward calls sigmoid" in messages[0] and "Gate.forward calls tanh" in messages[0]
    assert "relu" not in messages[0].split("code:")[1]  # F.relu is the target itself, not a problem
    assert type(model.inner[1]) is nn.ReLU


def test_functional_relu_is_named_for_the_leaky_family():
    with pytest.warns(UserWarning, match=r"Functional\.forward calls relu, sigmoid"):
        swap_activation(Functional(), "leaky_relu")


def test_no_warning_for_module_only_forward():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        swap_activation(Block(), "relu")


def test_not_applicable_leaves_the_model_identical():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3), nn.PReLU())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = list(model)
    with pytest.raises(NotApplicable, match="swap_activation: the model has no Sigmoid"):
        swap_activation(model, "relu")
    assert list(model) == modules
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_target_is_a_value_error():
    with pytest.raises(ValueError, match="to must be one of"):
        swap_activation(Block(), "softmax")


def test_swap_redraws_every_layer_feeding_a_new_activation_with_its_init():
    """Every Linear in front of a new ReLU gets He's std sqrt(2 / fan_in), whichever module ids Python reuses (the
    old activations are freed during the swap)."""
    for seed in range(3):
        torch.manual_seed(seed)
        model = nn.Sequential(*[m for _ in range(20) for m in (nn.Linear(64, 64), nn.Sigmoid())], nn.Linear(64, 10))
        treated = gd.treat(model, ["swap_activation:relu"], inputs=torch.randn(256, 64), seed=seed).model
        feeding = [m for m, nxt in zip(treated, list(treated)[1:]) if isinstance(m, nn.Linear)
                   and isinstance(nxt, nn.ReLU)]
        assert len(feeding) == 20
        for linear in feeding:
            assert float(linear.weight.detach().std()) == pytest.approx((2 / 64) ** 0.5, rel=0.1)
