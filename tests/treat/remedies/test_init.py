"""Init remedies: statistics against theory, orthogonality, edge of chaos, LSUV, recurrent gate biases, IRNN."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradient_doctor.errors import NotApplicable
from gradient_doctor.treat.remedies.init import critical_init, he_init, orthogonal_init, xavier_init, zero_biases
from gradient_doctor.treat.remedies.lsuv import lsuv_init
from gradient_doctor.treat.remedies.recurrent_init import forget_gate_bias, identity_recurrent_init
from gradient_doctor.treat.surgery.following import following_activations

INITS = [he_init, xavier_init, orthogonal_init, critical_init]


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def mlp(depth: int, width: int, activation) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), activation()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


# ---- which activation follows a layer ----------------------------------------------------------------------

def test_following_activations_skips_norms_and_stops_at_the_next_weight_layer():
    model = nn.Sequential(
        nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(), nn.Tanh(),
        nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(0.1)),
        nn.Linear(4, 4), nn.Embedding(3, 4), nn.ReLU(),
        nn.Linear(4, 2),
    )
    assert following_activations(model) == {"0": model[3], "4.0": model[4][1], "5": None, "8": None}


@pytest.mark.parametrize("recurrent", [nn.RNN(4, 5), nn.GRU(4, 5), nn.LSTM(4, 5)])
def test_a_recurrent_layer_is_the_next_layer_not_an_activation(recurrent):
    # its hidden states are read like a tanh's (probe.layers), but it has weights and runs on sequences
    model = nn.Sequential(nn.Linear(3, 4), recurrent)
    assert following_activations(model) == {"0": None}


# ---- He and Xavier: variance against the formulas -----------------------------------------------------------

@pytest.mark.parametrize(
    "activation, gain2",
    [(nn.ReLU(), 2.0), (nn.LeakyReLU(0.2), 2.0 / (1 + 0.2**2)), (nn.Tanh(), (5 / 3) ** 2), (nn.Sigmoid(), 1.0),
     (nn.SELU(), 1.0), (None, 1.0)],
)
def test_he_normal_variance_is_gain2_over_fan_in(activation, gain2):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 1000), *([activation] if activation is not None else []))
    he_init(model)
    w = model[0].weight
    assert relative(w.var().item(), gain2 / 1000) < 0.03
    assert abs(w.mean().item()) < 0.03 * math.sqrt(gain2 / 1000)
    assert torch.count_nonzero(model[0].bias) == 0


def test_he_fan_out_uniform():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 500), nn.ReLU())
    he_init(model, mode="fan_out", distribution="uniform")
    w = model[0].weight
    bound = math.sqrt(3 * 2 / 500)
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert relative(w.var().item(), 2 / 500) < 0.03


@pytest.mark.parametrize("distribution", ["uniform", "normal"])
def test_xavier_variance_is_2_over_fan_sum(distribution):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 600), nn.Tanh())
    xavier_init(model, distribution=distribution)
    w = model[0].weight
    assert relative(w.var().item(), 2 / 1600) < 0.03
    if distribution == "uniform":
        bound = math.sqrt(6 / 1600)
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound


def test_xavier_gain_none_takes_the_activation_gain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1000, 1000), nn.ReLU())
    xavier_init(model, gain=None)
    assert relative(model[0].weight.var().item(), 2 * 2 / 2000) < 0.03


def test_transposed_and_grouped_convolutions_preserve_the_forward_variance():
    # He init (no activation: gain 1) makes each output unit's variance that of the inputs, whatever the layout:
    # measured on interior pixels, stride 1.
    torch.manual_seed(0)
    for layer in (nn.ConvTranspose2d(48, 16, 3, padding=1), nn.Conv2d(48, 32, 3, padding=1, groups=4),
                  nn.ConvTranspose2d(48, 32, 3, padding=1, groups=4)):
        he_init(layer)
        x = torch.randn(8, 48, 20, 20)
        with torch.no_grad():
            y = layer(x)[:, :, 1:-1, 1:-1]
        assert relative(y.var().item(), 1.0) < 0.05, layer


# ---- orthogonal and delta-orthogonal ---------------------------------------------------------------------------

def test_orthogonal_square_wide_and_activation_gain():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(100, 40), nn.Linear(40, 40), nn.ReLU())
    orthogonal_init(model)
    eye = torch.eye(64)
    torch.testing.assert_close(model[0].weight @ model[0].weight.T, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(model[1].weight @ model[1].weight.T, eye[:40, :40], atol=1e-5, rtol=0)
    torch.testing.assert_close(model[2].weight @ model[2].weight.T, 2 * eye[:40, :40], atol=1e-5, rtol=0)


def test_orthogonal_tall_matrix_has_unit_rows_on_average():
    torch.manual_seed(0)
    layer = nn.Linear(40, 100)
    orthogonal_init(layer)
    w = layer.weight
    torch.testing.assert_close(w.T @ w, 100 / 40 * torch.eye(40), atol=1e-5, rtol=0)  # equal singular values
    assert relative(w.pow(2).sum(1).mean().item(), 1.0) < 1e-5


def test_orthogonal_transposed_conv_rows_are_output_channels():
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(4, 6, 3)
    orthogonal_init(layer, gain=1.0)
    rows = layer.weight.transpose(0, 1).reshape(6, -1)  # output channel x (input channel, kernel)
    torch.testing.assert_close(rows @ rows.T, torch.eye(6), atol=1e-5, rtol=0)


def test_critical_conv_is_delta_orthogonal():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(8, 12, 5), nn.Tanh())
    critical_init(model)
    w = model[0].weight
    centre = w[:, :, 1, 1]
    off = w.clone()
    off[:, :, 1, 1] = 0
    assert torch.count_nonzero(off) == 0 and torch.count_nonzero(model[2].weight[:, :, [0, 1, 3, 4]]) == 0
    torch.testing.assert_close(centre @ centre.T, 2 * torch.eye(16), atol=1e-5, rtol=0)  # ReLU: sigma_w^2 = 2
    # the convolution maps every pixel's channel vector by sqrt(2) * an orthogonal matrix: norms scale by sqrt(2)
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        y = F.conv2d(x, w, padding=1)
    torch.testing.assert_close(y.norm(dim=1), math.sqrt(2) * x.norm(dim=1), rtol=1e-4, atol=1e-5)
    centre1d = model[2].weight[:, :, 2]
    gram = centre1d.T @ centre1d  # 12 x 8: orthonormal columns, scaled to unit rows on average
    torch.testing.assert_close(gram / gram[0, 0], torch.eye(8), atol=1e-5, rtol=0)


def test_critical_tanh_is_on_the_mean_field_critical_line():
    # Independent check by trapezoid integration: with the drawn sigma_w (read off the orthogonal weights) and
    # sigma_b (the bias spread), the q where chi_1 = sigma_w^2 E[tanh'(sqrt(q) z)^2] = 1 is a fixed point of
    # q = sigma_w^2 E[tanh(sqrt(q) z)^2] + sigma_b^2.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 512), nn.Tanh())
    critical_init(model)
    w = model[0].weight.double()
    sigma_w2 = (w @ w.T).diagonal().mean().item()
    sigma_b2 = model[0].bias.double().var().item()
    assert relative(sigma_b2, 1e-5) < 0.15
    z = np.linspace(-12, 12, 48001)
    density = np.exp(-z**2 / 2) / math.sqrt(2 * math.pi)

    def expect(values: np.ndarray) -> float:  # trapezoid rule against the standard normal density
        f = values * density
        return float(((f[1:] + f[:-1]) / 2 * np.diff(z)).sum())

    chi = lambda q: sigma_w2 * expect(1 / np.cosh(math.sqrt(q) * z) ** 4)  # noqa: E731
    low, high = 1e-8, 10.0
    for _ in range(100):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if chi(mid) > 1 else (low, mid)
    q = high
    fixed = sigma_w2 * expect(np.tanh(math.sqrt(q) * z) ** 2) + 1e-5
    assert relative(fixed, q) < 0.01
    assert 1.0 < sigma_w2 < 1.1


def backward_ratio(model: nn.Sequential, x: torch.Tensor) -> float:
    """|dL/d(first pre-activation)| / |dL/d(last hidden pre-activation)| for a fixed random readout."""
    pre: list[torch.Tensor] = []
    h = x
    for module in model:
        h = module(h)
        if isinstance(module, nn.Linear):
            h.retain_grad()
            pre.append(h)
    (h * torch.randn_like(h)).sum().backward()
    return (pre[0].grad.norm() / pre[-2].grad.norm()).item()


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU])
def test_critical_init_keeps_the_gradient_through_50_layers(activation):
    torch.manual_seed(0)
    x = torch.randn(64, 128)
    default = mlp(50, 128, activation)
    assert backward_ratio(default, x) < 1e-8  # measured ~1e-12 (tanh), ~1e-19 (ReLU) at PyTorch's default init
    treated = critical_init(mlp(50, 128, activation))
    assert 0.1 < backward_ratio(treated, x) < 10  # measured ~0.19 (tanh: q decays from 1 to q*), ~1 (ReLU)


# ---- recurrent modules in the inits ----------------------------------------------------------------------

def test_he_init_lstm_per_gate_input_variance_and_orthogonal_hidden():
    torch.manual_seed(0)
    lstm = nn.LSTM(150, 200, num_layers=2)
    he_init(lstm)
    H = 200
    for layer, fan_in in ((0, 150), (1, 200)):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        for k, gain2 in enumerate([1.0, 1.0, (5 / 3) ** 2, 1.0]):  # i, f (sigmoid), g (tanh), o (sigmoid)
            assert relative(w_ih[k * H:(k + 1) * H].var().item(), gain2 / fan_in) < 0.05
            block = w_hh[k * H:(k + 1) * H]
            torch.testing.assert_close(block @ block.T, torch.eye(H), atol=1e-4, rtol=0)
        assert torch.count_nonzero(getattr(lstm, f"bias_ih_l{layer}")) == 0
        assert torch.count_nonzero(getattr(lstm, f"bias_hh_l{layer}")) == 0


def test_lstm_projection_and_gru_cell_are_covered():
    torch.manual_seed(0)
    lstm, cell = nn.LSTM(8, 16, proj_size=4), nn.GRUCell(8, 16)
    before = [p.clone() for p in (*lstm.parameters(), *cell.parameters())]
    xavier_init(nn.ModuleList([lstm, cell]))
    after = [*lstm.parameters(), *cell.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(after, before) if a.dim() == 2)
    hidden = lstm.weight_hh_l0[16:32]  # forget gate, 16 x 4 (proj): orthonormal columns, unit rows on average
    torch.testing.assert_close(hidden.T @ hidden, 4 * torch.eye(4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("kdim", [None, 300])
def test_attention_projections_are_drawn_per_projection(kdim):
    # packed in_proj_weight (or q/k/v_proj_weight when kdim differs), each projection on its own fans; the bias zeroed
    torch.manual_seed(0)
    attention = nn.MultiheadAttention(400, 4, kdim=kdim, vdim=kdim)
    with torch.no_grad():
        for p in attention.parameters():
            p.mul_(3.0).add_(0.5)
    he_init(attention)
    if kdim is None:
        q, k, v = attention.in_proj_weight.chunk(3)
    else:
        q, k, v = attention.q_proj_weight, attention.k_proj_weight, attention.v_proj_weight
    for weight, fan_in in ((q, 400), (k, kdim or 400), (v, kdim or 400), (attention.out_proj.weight, 400)):
        assert abs(weight.mean().item()) < 0.01 / math.sqrt(fan_in)
        assert relative(weight.var().item(), 1.0 / fan_in) < 0.05  # He, no activation after: gain 1
    assert torch.count_nonzero(attention.in_proj_bias) == 0 and torch.count_nonzero(attention.out_proj.bias) == 0


def test_zero_biases_zeroes_every_bias_and_keeps_every_weight():
    torch.manual_seed(0)
    model = nn.ModuleDict({"fc": nn.Linear(4, 6), "conv": nn.Conv1d(2, 3, 3), "gru": nn.GRU(4, 5, num_layers=2),
                           "attention": nn.MultiheadAttention(6, 2), "norm": nn.LayerNorm(6)})
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(-3.0 if "bias" in name else 0.0)
    before = {n: p.clone() for n, p in model.named_parameters()}
    zero_biases(model)
    for name, p in model.named_parameters():
        if name.startswith("norm"):  # a normaliser's shift is not a unit's bias: left as it was
            assert torch.equal(p, before[name]), name
        elif "bias" in name:
            assert torch.count_nonzero(p) == 0, name
        else:
            assert torch.equal(p, before[name]), name
    with pytest.raises(NotApplicable, match="no nonzero bias"):
        zero_biases(model)  # nothing left to act on


# ---- dtype, device, NotApplicable ---------------------------------------------------------------------------

@pytest.mark.parametrize("init", INITS)
def test_float64_models_stay_float64(init):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4), nn.GRU(4, 5))
    model = model.double()
    init(model)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" and torch.isfinite(p).all()
               for p in model.parameters())


def unchanged_after(remedy, model: nn.Module) -> bool:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NotApplicable, match=remedy.__name__.replace("lsuv_on_tokens", "lsuv_init")):
        remedy(model)
    return before.keys() == model.state_dict().keys() and all(
        torch.equal(before[k], v) for k, v in model.state_dict().items()
    )


def lsuv_on_tokens(model: nn.Module) -> nn.Module:
    return lsuv_init(model, inputs=torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("remedy", [*INITS, lsuv_on_tokens])
def test_not_applicable_without_weight_layers(remedy):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 6), nn.LayerNorm(6), nn.Tanh())
    assert unchanged_after(remedy, model)


def test_recurrent_remedies_not_applicable():
    torch.manual_seed(0)
    assert unchanged_after(forget_gate_bias, nn.Sequential(nn.Linear(3, 3), nn.RNN(3, 3)))
    assert unchanged_after(forget_gate_bias, nn.LSTM(3, 3, bias=False))
    assert unchanged_after(identity_recurrent_init, nn.Sequential(nn.LSTM(3, 3), nn.GRU(3, 3)))


# ---- LSUV -------------------------------------------------------------------------------------------------

class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.Tanh(), nn.Dropout(0.5),
                                  nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.side = nn.Linear(5, 8)
        self.head = nn.Sequential(nn.Linear(8 * 6 * 6 + 8, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, image, extra):
        return self.head(torch.cat([self.conv(image), self.side(extra)], dim=1))


def test_lsuv_gives_every_layer_unit_output_variance_and_restores_modes():
    torch.manual_seed(0)
    model = TwoInputs().train()
    model.conv[1].eval()  # a mixed mode that must come back as it was
    modes = [m.training for m in model.modules()]
    inputs = (3 * torch.randn(64, 3, 8, 8) + 1, torch.randn(64, 5) * 10)
    lsuv_init(model, inputs=inputs, tol=0.1)
    assert [m.training for m in model.modules()] == modes
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    variances: dict[nn.Module, float] = {}

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        variances[module] = output.var().item()

    handles = [m.register_forward_hook(record) for m in layers]
    model.eval()  # LSUV measures in eval mode (as the authors' implementation): so does this check
    with torch.no_grad():
        model(*inputs)
    for handle in handles:
        handle.remove()
    assert len(variances) == len(layers)
    assert all(abs(v - 1) < 0.1 for v in variances.values()), variances
    for layer in layers:  # orthonormal pre-init survives a scalar rescale: W W^T is a multiple of I (wide layers)
        w = layer.weight.reshape(layer.weight.shape[0], -1)
        if w.shape[0] <= w.shape[1]:
            gram = w @ w.T
            torch.testing.assert_close(gram / gram[0, 0], torch.eye(w.shape[0]), atol=1e-4, rtol=0)
        assert torch.count_nonzero(layer.bias) == 0


def test_lsuv_float64_and_unreached_layer_warning():
    torch.manual_seed(0)
    model = nn.ModuleDict({"used": nn.Linear(4, 4), "unused": nn.Linear(4, 4)}).double()
    model.forward = lambda x: model["used"](x)
    x = torch.randn(32, 4, dtype=torch.float64)
    with pytest.warns(UserWarning, match="not reached"):
        lsuv_init(model, inputs=x)
    assert model["used"].weight.dtype == torch.float64
    assert abs(model["used"](x).var().item() - 1) < 0.1


# ---- forget-gate bias and IRNN ------------------------------------------------------------------------------

def test_forget_gate_bias_lstm_slices_exact_other_gates_untouched():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    before = {k: v.clone() for k, v in lstm.state_dict().items()}
    forget_gate_bias(lstm, value=2.0)
    for name, value in lstm.state_dict().items():
        if name.startswith("bias"):
            expected = before[name].clone()
            expected[5:10] = 2.0 if name.startswith("bias_ih") else 0.0
            assert torch.equal(value, expected), name
        else:
            assert torch.equal(value, before[name]), name


def test_forget_gate_is_the_gate_that_keeps_the_state():
    # Independent of the slicing: with zero weights, zero input and zero candidate-gate bias, one LSTM step gives
    # c1 = sigmoid(b_f) * c0 and one GRU step (n = tanh(0) = 0) gives h1 = sigmoid(b_z) * h0.
    torch.manual_seed(0)
    lstm, gru = nn.LSTM(3, 4), nn.GRU(3, 4)
    for rnn, candidate in ((lstm, slice(8, 12)), (gru, slice(8, 12))):
        with torch.no_grad():
            for p in rnn.parameters():
                p.zero_()
        forget_gate_bias(rnn, value=1.5)
        assert torch.count_nonzero(rnn.bias_ih_l0[candidate]) == 0
    x, state = torch.zeros(1, 1, 3), torch.full((1, 1, 4), 2.0)
    _, (_, c1) = lstm(x, (torch.zeros(1, 1, 4), state))
    _, h1 = gru(x, state)
    expected = torch.sigmoid(torch.tensor(1.5)) * 2.0
    torch.testing.assert_close(c1, expected.expand(1, 1, 4))
    torch.testing.assert_close(h1, expected.expand(1, 1, 4))


def test_chrono_init_lstm_and_gru():
    torch.manual_seed(0)
    lstm, gru = nn.LSTM(3, 4000), nn.GRUCell(3, 200)
    forget_gate_bias(lstm, chrono_t_max=50)
    H = 4000
    b_f, b_i = lstm.bias_ih_l0[H:2 * H], lstm.bias_ih_l0[:H]
    assert torch.equal(b_i, -b_f)
    assert torch.count_nonzero(lstm.bias_hh_l0[:2 * H]) == 0
    times = b_f.exp()  # ~ U(1, 49): mean 25, sd 48 / sqrt(12) ~ 13.9, standard error ~ 0.22
    assert times.min() >= 1 - 1e-4 and times.max() <= 49 + 1e-3 and abs(times.mean().item() - 25) < 1.0
    g = gru.bias_ih.detach().clone()
    forget_gate_bias(gru, chrono_t_max=50)
    assert torch.equal(gru.bias_ih[:200], g[:200]) and torch.equal(gru.bias_ih[400:], g[400:])
    assert ((gru.bias_ih[200:400] >= 0) & (gru.bias_ih[200:400] <= math.log(49) + 1e-5)).all()


def test_chrono_rejects_a_too_short_horizon():
    with pytest.raises(ValueError, match="chrono_t_max"):
        forget_gate_bias(nn.LSTM(3, 3), chrono_t_max=2)


def test_identity_recurrent_init():
    torch.manual_seed(0)
    rnn = nn.RNN(500, 64, num_layers=2, bidirectional=True, nonlinearity="relu").double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        identity_recurrent_init(rnn, scale=0.9)
    for name, p in rnn.named_parameters():
        assert p.dtype == torch.float64
        if name.startswith("weight_hh"):
            assert torch.equal(p, 0.9 * torch.eye(64, dtype=torch.float64)), name
        elif name.startswith("bias"):
            assert torch.count_nonzero(p) == 0, name
    assert relative(rnn.weight_ih_l0.std().item(), 1e-3) < 0.03
    with pytest.warns(UserWarning, match="tanh"):
        identity_recurrent_init(nn.Sequential(nn.Linear(2, 2), nn.RNN(2, 3)))
