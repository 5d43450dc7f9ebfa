"""Keras 3 models (torch backend) as the probe's layers, and checkup's numbers on them against plain torch computed
from the model's own variables: per-layer gradient norms and the backward signal at the input, the pre-activation
and the output of each Dense(activation=...)."""

from __future__ import annotations

import math
import sys
import types

import pytest
import torch

import gradient_doctor as gd
from gradient_doctor.probe.keras_layers import activation_spec
from gradient_doctor.probe.layers import discover

keras = pytest.importorskip("keras", reason="needs Keras 3: pip install 'gradient-doctor[keras]'")
L = keras.layers


def test_layers_are_keras_layers_with_their_own_variables():
    keras.utils.set_random_seed(70)
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4, name="a"), L.Dense(4, activation="tanh", name="b")],
                             name="block")
    inputs = keras.Input((3,))
    hidden = L.Dense(4, name="first")(inputs)
    hidden = L.BatchNormalization(name="bn")(hidden)
    hidden = L.ReLU(name="relu")(hidden)
    outputs = L.Dense(2, name="out")(inner(L.Dropout(0.5, name="drop")(hidden)))
    model = keras.Model(inputs, outputs)
    model.get_layer("out").trainable = False

    layers, params = discover(model)
    assert [layer.name for layer in layers] == ["first", "bn", "relu", "block/a", "block/b", "out"]  # not drop, block
    by_name = {layer.name: layer for layer in layers}
    expected = {"first": model.get_layer("first").trainable_variables,
                "bn": [model.get_layer("bn").gamma, model.get_layer("bn").beta],  # moving statistics are not params
                "block/a": inner.get_layer("a").trainable_variables,
                "out": [model.get_layer("out").kernel, model.get_layer("out").bias]}  # frozen, still its weights
    for name, variables in expected.items():
        assert [params[i].tensor for i in by_name[name].params] == [v.value for v in variables], name
    assert [params[i].name for i in by_name["first"].params] == ["first/kernel", "first/bias"]
    assert not params[by_name["out"].params[0]].tensor.requires_grad
    assert by_name["relu"].params == [] and by_name["relu"].activation.rectified
    assert by_name["block/b"].activation.bounds == (-1.0, 1.0) and by_name["block/a"].activation is None


@pytest.mark.parametrize("layer, bounds, rectified", [
    (L.Dense(2, activation="sigmoid"), (0.0, 1.0), False),
    (L.Conv1D(2, 3, activation="hard_sigmoid"), (0.0, 1.0), True),
    (L.Activation("relu6"), (0.0, 6.0), True),
    (L.ReLU(max_value=3.0), (0.0, 3.0), True),
    (L.ReLU(negative_slope=0.1), None, False),
    (L.LeakyReLU(), None, False),
    (L.Activation("gelu"), None, False),
    (L.SimpleRNN(2), (-1.0, 1.0), False),
])
def test_activation_specs_follow_the_torch_modules_of_the_same_function(layer, bounds, rectified):
    spec = activation_spec(layer)
    assert (spec.bounds, spec.rectified) == (bounds, rectified)


@pytest.mark.parametrize("layer", [L.Dense(2), L.Activation("softmax"), L.LSTM(2), L.GRU(2), L.Dropout(0.1)])
def test_no_activation_spec(layer):
    assert activation_spec(layer) is None


def test_checkup_numbers_equal_plain_torch_from_the_models_variables():
    keras.utils.set_random_seed(71)
    activations = ["sigmoid", "tanh", "relu", None]
    model = keras.Sequential([keras.Input((5,))] + [L.Dense(6, activation=a) for a in activations])
    torch.manual_seed(72)
    x, y = torch.randn(8, 5), torch.randn(8, 6)
    diagnosis = gd.checkup(model, x, y, lambda out, target: ((out - target) ** 2).mean())

    # plain torch: the same forward from the Keras variables, with every intermediate kept
    functions = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, None: lambda z: z}
    h = x.clone().requires_grad_(True)
    inputs, pre, outs = [], [], []
    for layer, name in zip(model.layers, activations):
        inputs.append(h)
        z = h @ layer.kernel.value + layer.bias.value
        z.retain_grad()
        h = functions[name](z)
        h.retain_grad()
        pre.append(z)
        outs.append(h)
    loss = ((h - y) ** 2).mean()
    loss.backward()
    for stats, layer, i, z, out in zip(diagnosis.measurement.layers, model.layers, inputs, pre, outs):
        assert stats.name == layer.name
        grads = [v.value.grad for v in layer.trainable_variables]
        assert stats.grad_norm == pytest.approx(math.sqrt(sum(float(g.double().square().sum()) for g in grads)), rel=1e-5)
        assert stats.delta_out == pytest.approx(float(out.grad.norm()), rel=1e-5)
        assert stats.delta_in == pytest.approx(float(i.grad.norm()), rel=1e-5)
        assert stats.delta_mid == pytest.approx(float(z.grad.norm()), rel=1e-5)  # at the activation's input
    budget = diagnosis.measurement.budget
    between = list(zip(inputs, pre, outs))[1:]
    activation = sum(math.log10(z.grad.norm() / out.grad.norm()) for _, z, out in between)
    weights = sum(math.log10(i.grad.norm() / z.grad.norm()) for i, z, _ in between)
    assert budget.by_role["activation"] == pytest.approx(activation, rel=1e-5)
    assert budget.by_role["weights"] == pytest.approx(weights, rel=1e-5)
    assert [layer.activation for layer in model.layers] == [keras.activations.get(a) for a in activations]  # unwrapped


def test_checkup_leaves_moving_statistics_and_seed_states_as_they_were():
    keras.utils.set_random_seed(73)
    model = keras.Sequential([keras.Input((4,)), L.Dense(8), L.BatchNormalization(), L.Dropout(0.5), L.Dense(1)])
    before = [v.value.clone() for v in model.non_trainable_variables]
    diagnosis = gd.checkup(model, torch.randn(16, 4) * 3 + 1)
    bn = next(s for s in diagnosis.measurement.layers if s.kind == "BatchNormalization")
    assert bn.rms_out == pytest.approx(1.0, rel=0.05)  # training mode: normalised by the batch's own statistics
    for value, saved in zip(model.non_trainable_variables, before):
        torch.testing.assert_close(value.value, saved)


def test_a_keras_model_of_another_backend_names_keras_backend_torch(monkeypatch):
    class Layer:  # a Keras layer under JAX: not a torch module
        pass

    stub = types.SimpleNamespace(layers=types.SimpleNamespace(Layer=Layer),
                                 backend=types.SimpleNamespace(backend=lambda: "jax"))
    monkeypatch.setitem(sys.modules, "keras", stub)
    for call in (lambda: gd.checkup(Layer(), torch.zeros(1, 2)), lambda: gd.watch(Layer()),
                 lambda: gd.treat(Layer(), inputs=torch.zeros(1, 2))):
        with pytest.raises(gd.InvalidType, match="'jax' backend.*set KERAS_BACKEND=torch"):
            call()
