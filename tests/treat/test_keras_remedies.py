"""`gd.treat` on Keras models (torch backend): the seeds' deep sigmoid net repaired by the catalog's remedies carried out
on Keras layers, checked against plain torch forwards of the treated model's own variables; remedies with no Keras
form are rolled back as "not applicable to Keras models"."""

from __future__ import annotations

import math

import pytest
import torch

import gradient_doctor as gd
from gradient_doctor.treat.keras_remedies import insert_norm, keras_remedy

keras = pytest.importorskip("keras", reason="needs Keras 3: pip install 'gradient-doctor[keras]'")
WIDTH = 32


def sigmoid_net(depth: int = 10) -> keras.Sequential:
    keras.utils.set_random_seed(80)
    return keras.Sequential([keras.Input((WIDTH,))] + [keras.layers.Dense(WIDTH, activation="sigmoid")
                                                        for _ in range(depth)] + [keras.layers.Dense(1)])


def plain_forward(model: keras.Sequential, x: torch.Tensor, activation) -> torch.Tensor:
    """The Dense chain from the model's variables in plain torch, `activation` between the layers."""
    layers = model.layers
    for layer in layers[:-1]:
        x = activation(x @ layer.kernel.value + layer.bias.value)
    return x @ layers[-1].kernel.value + layers[-1].bias.value


def test_treat_repairs_the_deep_sigmoid_net():
    model = sigmoid_net()
    torch.manual_seed(81)
    x = torch.randn(64, WIDTH)
    treatment = gd.treat(model, inputs=x)
    assert treatment.before.findings[0].kind == "vanishing_gradient"
    assert treatment.applied == ["he_init", "swap_activation:relu"] and treatment.after.healthy
    treated = treatment.model
    assert all(layer.activation is keras.activations.relu for layer in treated.layers[:-1])
    with torch.no_grad():
        torch.testing.assert_close(treated(x), plain_forward(treated, x, torch.relu))
        torch.testing.assert_close(model(x), plain_forward(model, x, torch.sigmoid))  # the original is untouched
    for layer in treated.layers:  # He: std sqrt(2 / fan_in) (Keras truncates at 2 std and rescales), zero biases
        kernel = layer.kernel.value
        assert float(kernel.std()) == pytest.approx(math.sqrt(2 / kernel.shape[0]), rel=0.15)
        assert not layer.bias.value.any()
    first = model.layers[0].name  # Keras numbers its layers' default names process-wide
    assert treatment.diff[0] == f"- {first}: Dense(activation=sigmoid)"
    assert f"+ {first}: Dense(activation=relu)" in treatment.diff


def test_remedies_without_a_keras_form_are_not_applicable():
    treatment = gd.treat(sigmoid_net(), ["lsuv_init", "add_residual"], inputs=torch.randn(16, WIDTH))
    reasons = dict(treatment.rejected)
    assert treatment.applied == []
    for name in ("lsuv_init", "add_residual"):
        assert reasons[name].startswith(f"not applicable: not applicable to Keras models: {name}"), reasons[name]


def test_insert_norm_rebuilds_a_sequential_with_the_norm_before_each_activation():
    model = sigmoid_net(depth=3)
    torch.manual_seed(82)
    x = torch.randn(16, WIDTH)
    treated = insert_norm(model, "layer")
    assert [type(layer).__name__ for layer in treated.layers] == \
        ["Dense", "LayerNormalization", "Activation"] * 3 + ["Dense"]

    def plain(h):
        for dense in treated.layers[:-1:3]:
            h = torch.sigmoid(torch.nn.functional.layer_norm(h @ dense.kernel.value + dense.bias.value, (WIDTH,),
                                                             eps=1e-3))  # Keras's epsilon; gamma 1, beta 0 at init
        return h @ treated.layers[-1].kernel.value + treated.layers[-1].bias.value

    with torch.no_grad():
        torch.testing.assert_close(treated(x), plain(x))
    with pytest.raises(gd.UnsafeRemedy, match="Yang et al. 2019"):
        keras_remedy("insert_norm:batch")(sigmoid_net(depth=11))
    functional = keras.Model(model.inputs, model.outputs)
    with pytest.raises(gd.NotApplicable, match="not applicable to Keras models: insert_norm:layer rebuilds"):
        insert_norm(functional, "layer")
