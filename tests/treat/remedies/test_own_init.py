"""own_init: a model that ships its own `_init_weights` gets it back, and gd.treat tries it before a generic init.
Checked against plain torch statistics of the weights and against the same model's unbroken construction."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.errors import NotApplicable
from gradient_doctor.treat.remedies.init import own_init, own_initialisers

transformers = pytest.importorskip("transformers")


def _gpt2(scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=2, n_positions=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) or type(module).__name__ == "Conv1D":
                module.weight.mul_(scale)
    return model


def _weight_stds(model: nn.Module) -> dict[str, float]:
    return {name: float(p.detach().std()) for name, p in model.named_parameters() if p.dim() == 2}


def test_own_init_gives_a_scaled_gpt2_back_the_weight_scale_of_its_own_construction():
    healthy, broken = _weight_stds(_gpt2()), own_init(_gpt2(scale=30.0))
    restored = _weight_stds(broken)
    assert healthy.keys() == restored.keys()
    for name, std in healthy.items():  # N(0, 0.02); GPT-2's residual projections 0.02 / sqrt(2 n_layer)
        assert restored[name] == pytest.approx(std, rel=0.1), name
    layer_norm = broken.transformer.h[0].ln_1
    assert torch.equal(layer_norm.weight, torch.ones_like(layer_norm.weight))


def test_the_outermost_module_with_its_own_init_is_applied_inside_a_wrapper():
    inner = _gpt2(scale=30.0)
    wrapper = nn.ModuleDict({"lm": inner, "head": nn.Linear(4, 4)})
    assert own_initialisers(wrapper) == [inner]  # not inner.transformer, which has _init_weights too
    own_init(wrapper)
    assert float(inner.transformer.h[0].attn.c_attn.weight.detach().std()) == pytest.approx(0.02, rel=0.1)


class _NanoStyle(nn.Module):
    """A GPT-style module that initialises through `self.apply(self._init_weights)`, as nanoGPT does."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _NoArgument(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def _init_weights(self) -> None:  # another convention: not called by own_init
        raise AssertionError("called")


def test_a_nanogpt_style_init_is_applied_and_other_conventions_are_not_called():
    model = _NanoStyle()
    with torch.no_grad():
        model.body[0].weight.mul_(50)
    own_init(model)
    assert float(model.body[0].weight.detach().std()) < 0.05
    with pytest.raises(NotApplicable):
        own_init(_NoArgument())
    with pytest.raises(NotApplicable):
        own_init(nn.Sequential(nn.Linear(4, 4)))


def test_treat_tries_the_models_own_init_before_a_generic_one_and_never_on_plain_torch():
    ids = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        treated = gd.treat(_gpt2(scale=30.0), inputs={"input_ids": ids, "labels": ids})
    assert treated.before.findings[0].kind == "exploding_gradient"
    assert treated.applied[0] == "own_init" and treated.after.healthy
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    with torch.no_grad():
        for layer in (mlp[0], mlp[2], mlp[4]):
            layer.weight.mul_(30)
    plain = gd.treat(mlp, inputs=torch.randn(32, 16))
    assert plain.applied and "own_init" not in plain.applied + [name for name, _ in plain.rejected]
