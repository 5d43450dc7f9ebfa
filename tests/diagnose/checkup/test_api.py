"""checkup leaves the model as it was, accepts the usual input/output forms, fails clearly, renders, and has a CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from rich.console import Console
from torch import nn

from gradient_doctor.cli import main
from gradient_doctor.diagnose import checkup
from gradient_doctor.errors import CheckupError, GradientDoctorError
from tests.diagnose.checkup.test_models import LastStep, mlp, readout


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def bn_model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))


def snapshot(model: nn.Module) -> dict:
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": [(p.grad, None if p.grad is None else p.grad.clone()) for p in model.parameters()],
        "modes": [m.training for m in model.modules()],
        "rng": torch.get_rng_state(),
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()],
    }


def assert_same(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(value, after["state"][key]), key  # weights, BN running stats, num_batches_tracked
    for (grad, saved), p in zip(before["grads"], model.parameters()):
        assert p.grad is grad  # the same tensor object (or still None)...
        assert saved is None or torch.equal(p.grad, saved)  # ...holding the same values
    assert after["modes"] == before["modes"]
    assert torch.equal(after["rng"], before["rng"])
    assert after["hooks"] == before["hooks"]


def prepared() -> nn.Sequential:
    model = bn_model().train()
    model[5].eval()  # a mixed train/eval tree
    model[0].weight.grad = torch.randn_like(model[0].weight)  # pre-existing gradients on some parameters
    model[4].bias.grad = torch.randn_like(model[4].bias)
    model(torch.randn(4, 8))  # BN has running stats and num_batches_tracked = 1
    model.register_forward_hook(lambda *a: None)  # a user's hook stays
    return model


def test_checkup_leaves_the_model_bit_identical():
    model = prepared()
    x = torch.randn(16, 8)
    x_before = x.clone()
    before = snapshot(model)
    checkup(model, x, trials=2)
    assert_same(model, before)
    assert torch.equal(x, x_before) and not x.requires_grad


def test_checkup_leaves_the_model_bit_identical_when_the_loss_fails():
    model, x = prepared(), torch.randn(16, 8)
    before = snapshot(model)

    def broken(output, targets):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        checkup(model, x, torch.zeros(16), broken)
    assert_same(model, before)


def test_recurrent_model_is_left_identical_too():
    model, x = LastStep(nn.GRU(4, 8, batch_first=True)), torch.randn(3, 20, 4)
    before = snapshot(model)
    checkup(model, x)
    assert_same(model, before)


def test_tuple_and_dict_inputs_and_outputs_with_logits_or_loss():
    @dataclass
    class Output:
        logits: torch.Tensor
        loss: torch.Tensor | None = None

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(6, 4)

        def forward(self, x, scale=None, labels=None):
            logits = self.body(x) * (1.0 if scale is None else scale)
            loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
            return Output(logits, loss)

    model, x = Model(), torch.randn(5, 6)
    def joint_norm(loss):  # the layer's parameters jointly, weight and bias together
        return float(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.body.parameters()))]).norm())

    reference = joint_norm(readout(model.body(x), 0))
    for inputs in (x, (x,), [x, 1.0], {"x": x}):
        diag = checkup(model, inputs)
        assert diag.measurement.loss_source == "readout"
        assert diag.measurement.layers[0].grad_norm == pytest.approx(reference, rel=1e-5)
    labels = torch.tensor([0, 1, 2, 3, 0])
    diag = checkup(model, {"x": x, "labels": labels})
    assert diag.measurement.loss_source == "output.loss"
    expected = joint_norm(nn.functional.cross_entropy(model.body(x), labels))
    assert diag.measurement.layers[0].grad_norm == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda m, x: checkup("not a model", x), TypeError, ["torch.nn.Module", "str"]),
        (lambda m, x: checkup(m, 5), TypeError, ["tensor", "tuple", "dict", "int"]),
        (lambda m, x: checkup(m, x, trials=0), ValueError, ["positive", "0"]),
        (lambda m, x: checkup(m, x, torch.zeros(4)), ValueError, ["loss_fn"]),
        (lambda m, x: checkup(m, x, loss_fn=lambda out: out), CheckupError, ["scalar", "(4, 3)"]),
        (lambda m, x: checkup(nn.Sequential(nn.Identity()), x), CheckupError, ["layer"]),
    ],
)
def test_bad_input_raises_a_clear_error(call, error, words):
    with pytest.raises(error) as info:
        call(mlp(1, 8, nn.ReLU, out=3), torch.randn(4, 8))
    for word in words:
        assert word in str(info.value)


def test_nothing_to_differentiate_is_a_gradient_doctor_error():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2)).requires_grad_(False)
    with pytest.raises(GradientDoctorError, match="requires grad"):
        checkup(model, torch.randint(0, 10, (3, 5)))


def test_hooks_are_removed_when_the_model_raises():
    class Fails(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.rnn = nn.RNN(4, 4)

        def forward(self, x):
            self.lin(x)
            raise ValueError("model failed")

    model, x = Fails(), torch.randn(3, 4)
    before = snapshot(model)
    with pytest.raises(ValueError, match="model failed"):
        checkup(model, x)
    assert_same(model, before)


def test_diagnosis_renders_and_is_json():
    model = mlp(10, 16, nn.Sigmoid)
    with torch.no_grad():
        model[20].weight[0, 0] = float("inf")
    for diag in (checkup(mlp(10, 16, nn.Sigmoid), torch.randn(8, 16)), checkup(model, torch.randn(8, 16)),
                 checkup(LastStep(nn.RNN(3, 8)), torch.randn(60, 2, 3))):
        data = json.loads(json.dumps(diag.to_dict(), allow_nan=False))
        assert data["healthy"] is False and data["findings"]
        assert len(data["measurement"]["layers"]) == len(diag.measurement.layers)
        text = str(diag)
        assert diag.measurement.layers[0].name in text and diag.findings[0].kind in text
        assert diag.findings[0].remedies[0] in text
        console = Console(record=True, width=140)
        console.print(diag)
        assert "█" in console.export_text()


def write_factory(tmp_path, body: str) -> str:
    path = tmp_path / "models.py"
    path.write_text("from torch import nn\n\n" + body)
    return str(path)


def test_cli_checkup_from_a_factory_file(tmp_path, capsys):
    path = write_factory(tmp_path, (
        "def deep():\n    return nn.Sequential(*[m for _ in range(10) for m in (nn.Linear(16, 16), nn.Sigmoid())])\n\n"
        "def shallow():\n    return nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 2))\n"
    ))
    assert main(["checkup", f"{path}:deep", "--input-shape", "8", "16"]) == 1
    assert "vanishing_gradient" in capsys.readouterr().out
    assert main(["checkup", f"{path}:shallow", "--input-shape", "8", "16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["healthy"] is True
    batch = tmp_path / "batch.pt"
    torch.save(torch.randn(4, 16), batch)
    assert main(["checkup", f"{path}:shallow", "--batch", str(batch)]) == 0


def test_cli_checkup_token_inputs_and_errors(tmp_path, capsys):
    path = write_factory(tmp_path, "def lm():\n    return nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 50))\n")
    assert main(["checkup", f"{path}:lm", "--input-shape", "2", "7", "--vocab-size", "50"]) == 0
    capsys.readouterr()
    assert main(["checkup", f"{path}:missing", "--input-shape", "2"]) == 2
    assert "callable missing" in capsys.readouterr().err
    assert main(["checkup", "no_colon", "--input-shape", "2"]) == 2
    assert "MODULE:FACTORY" in capsys.readouterr().err
    assert main(["checkup", f"{path}:lm", "--batch", str(tmp_path / "none.pt")]) == 2


def test_findings_and_remedies_accept_only_the_documented_names():
    from gradient_doctor.catalog import CATALOG
    from gradient_doctor.diagnose import Finding
    from gradient_doctor.diagnose.ranking import ranked

    with pytest.raises(ValueError, match="kind must be one of"):
        Finding("slow_gradient", "warning", "depth", [], {})
    with pytest.raises(ValueError, match="severity must be one of"):
        Finding("dead_units", "fatal", "depth", [], {})
    with pytest.raises(ValueError, match="catalog"):
        ranked("he_init", "magic_init")
    assert ranked("he_init", "insert_norm:batch", "he_init") == ["he_init", "insert_norm:batch"]
    assert all(isinstance(text, str) and text for text in CATALOG.values())
