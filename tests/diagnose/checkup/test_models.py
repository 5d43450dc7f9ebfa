"""Models and plain-torch reference computations shared by the checkup tests (no tests here)."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(depth: int, width: int, activation, init=None, out: int = 10) -> nn.Sequential:
    """`depth` hidden Linear+activation pairs, then a Linear head; `init(linear)` applied to hidden layers."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(width, width)
        if init is not None:
            init(linear)
        layers += [linear, activation()]
    layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def xavier(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


def kaiming(linear: nn.Linear) -> None:
    nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
    nn.init.zeros_(linear.bias)


def normal_std(scale: float):
    def init(linear: nn.Linear) -> None:
        nn.init.normal_(linear.weight, std=scale / math.sqrt(linear.in_features))
        nn.init.zeros_(linear.bias)

    return init


class LastStep(nn.Module):
    """A recurrent module and a linear head on its last step."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(rnn.hidden_size, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1] if self.rnn.batch_first else out[-1])


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


class PreNormTransformer(nn.Module):
    def __init__(self, vocab: int = 100, d: int = 64, depth: int = 4, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        block = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        return self.head(self.norm(self.encoder(self.embed(ids))))


def readout(y: torch.Tensor, seed: int) -> torch.Tensor:
    """The documented default loss: <R, y> / sqrt(numel y), R ~ N(0, 1) from a generator seeded with `seed`."""
    weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed))
    return (y * weights).sum() / math.sqrt(y.numel())


def chain_reference(model: nn.Sequential, x: torch.Tensor, loss_fn) -> dict[str, list[float]]:
    """Per module of a Sequential, in plain torch: ‖∂L/∂input‖ (through that module only), ‖∂L/∂output‖,
    input and output RMS, and ‖∂L/∂θ‖ over its own parameters. Each module's input is a clone of the previous
    output (its gradient is this module's alone), and the module runs on a further clone, so an in-place
    activation leaves that input intact and its gradient is the one with respect to the value before it."""
    inputs, outputs = [], []
    h = x.detach().clone().requires_grad_(True)
    for module in model:
        given = h.clone()
        out = module(given.clone())
        inputs.append(given)
        outputs.append(out)
        h = out
    loss = loss_fn(h)
    params = [p for m in model for p in m.parameters(recurse=False)]
    grads = torch.autograd.grad(loss, inputs + outputs + params)
    n = len(model)
    d_in, d_out, p_grads = grads[:n], grads[n:2 * n], list(grads[2 * n:])
    grad_norms = []
    for module in model:
        own = list(module.parameters(recurse=False))
        mine, p_grads = p_grads[:len(own)], p_grads[len(own):]
        grad_norms.append(math.sqrt(sum(float(g.double().square().sum()) for g in mine)) if own else math.nan)
    return {
        "delta_in": [float(g.double().norm()) for g in d_in],
        "delta_out": [float(g.double().norm()) for g in d_out],
        "rms_out": [float(o.detach().double().square().mean().sqrt()) for o in outputs],
        "rms_in": [float(i.detach().double().square().mean().sqrt()) for i in inputs],
        "grad_norm": grad_norms,
        "outputs": [o.detach() for o in outputs],
    }


def time_reference(rnn: nn.RNNBase, x: torch.Tensor, seed: int) -> torch.Tensor:
    """‖∂L/∂x_t‖ / ‖∂L/∂x_T‖ for L a random readout (seed) of the forward direction's last-step output."""
    x = x.detach().clone().requires_grad_(True)
    out, _ = rnn(x)
    time_dim = 1 if rnn.batch_first else 0
    last = out.select(time_dim, -1)[..., : rnn.hidden_size]
    (grad,) = torch.autograd.grad(readout(last, seed), x)
    norms = grad.double().transpose(0, time_dim).reshape(grad.shape[time_dim], -1).norm(dim=1)
    return norms / norms[-1]
