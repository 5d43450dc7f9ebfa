"""CNN scenarios: Conv2d on scikit-learn's digits as 1x8x8 images, Conv1d on MNIST-1D as 1x40 signals.

    >>> [s.name for s in SCENARIOS if s.label != "healthy"]
    >>> setup = SCENARIOS[0].make(); setup.batch(0)[0].shape
    torch.Size([64, 1, 8, 8])

Broken scenarios name the healthy one on the same data as `reference`: cnn_relu_healthy on digits,
cnn1d_relu_healthy on MNIST-1D.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from .base import Scenario, Setup
from .feedforward import freeze_, init_, on, scenario

SHAPES = {"digits": (1, 8, 8), "mnist1d": (1, 40)}
REFERENCES = {"digits": "cnn_relu_healthy", "mnist1d": "cnn1d_relu_healthy"}


def _cnn(depth: int, channels: int, activation: type[nn.Module] = nn.ReLU, data: str = "digits",
         norm: bool = False, seed: int = 0) -> nn.Sequential:
    """`depth` x (conv 'same' [-> BatchNorm] -> activation), then a linear classifier on all positions."""
    torch.manual_seed(seed)
    conv, batchnorm = (nn.Conv2d, nn.BatchNorm2d) if data == "digits" else (nn.Conv1d, nn.BatchNorm1d)
    kernel = 3 if data == "digits" else 5
    layers: list[nn.Module] = []
    fan_in = 1
    for _ in range(depth):
        layers += [conv(fan_in, channels, kernel, padding=kernel // 2), *([batchnorm(channels)] if norm else []),
                   activation()]
        fan_in = channels
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * math.prod(SHAPES[data][1:]), 10))


class _ResidualCNN(nn.Module):
    """1x8x8 -> stem conv -> `blocks` x (x + conv(relu(bn(conv(relu(bn(x))))))) -> linear classifier."""

    def __init__(self, blocks: int, channels: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1)) for _ in range(blocks))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 64, 10))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def _on(data: str, optimizer: str, lr: float, **options: object) -> Callable[[nn.Module], Setup]:
    return on(data, optimizer, lr, shape=SHAPES[data], **options)


_scenario = partial(scenario, "cnn", REFERENCES)

SCENARIOS: list[Scenario] = [
    # --- healthy controls (hard negatives: deep batch-normed, deep residual, tanh with Xavier init) --------------
    _scenario("cnn_relu_healthy", "healthy", "dev",
              lambda: _on("digits", "adam", 1e-3)(_cnn(2, 16)), "digits, 2x16 conv ReLU, default init, Adam 1e-3"),
    _scenario("cnn1d_relu_healthy", "healthy", "test",
              lambda: _on("mnist1d", "adamw", 3e-3)(_cnn(2, 32, data="mnist1d")),
              "MNIST-1D, 2x32 Conv1d ReLU, default init, AdamW 3e-3", data="mnist1d", steps=200, check_steps=60),
    _scenario("cnn_batchnorm_deep_healthy", "healthy", "dev",
              lambda: _on("digits", "momentum", 0.05)(_cnn(8, 8, norm=True)),
              "hard negative: digits, 8x8 conv-BatchNorm-ReLU, SGD+momentum 0.05", check_steps=30),
    _scenario("cnn_residual_deep_healthy", "healthy", "test",
              lambda: _on("digits", "momentum", 0.02)(_ResidualCNN(6, 8)),
              "hard negative: digits, 6 pre-activation residual blocks of 8 channels (13 convs), SGD+momentum 0.02",
              check_steps=30),
    _scenario("cnn1d_tanh_xavier_healthy", "healthy", "dev",
              lambda: _on("mnist1d", "sgd", 0.1)(init_(_cnn(4, 16, nn.Tanh, data="mnist1d"), "xavier")),
              "hard negative: MNIST-1D, 4x16 Conv1d tanh, Xavier init, SGD 0.1", data="mnist1d", steps=200,
              check_steps=60),
    _scenario("cnn_amp_bf16_healthy", "healthy", "dev",
              lambda: _on("digits", "adam", 1e-3, autocast=torch.bfloat16)(_cnn(2, 16)),
              "AMP control: digits, 2x16 conv ReLU under bfloat16 autocast, Adam 1e-3"),
    _scenario("cnn1d_frozen_layers_healthy", "healthy", "test",
              lambda: _on("mnist1d", "adam", 3e-3)(freeze_(_cnn(3, 32, data="mnist1d"), 1)),
              "frozen-layer control: MNIST-1D, 3x32 Conv1d ReLU, first conv requires_grad=False (no gradient, "
              "not vanishing), Adam 3e-3", data="mnist1d", steps=200, check_steps=60),
    # --- broken -------------------------------------------------------------------------------------------------
    _scenario("cnn_sigmoid_deep_vanishing", "vanishing", "dev",
              lambda: _on("digits", "adam", 1e-3)(_cnn(10, 8, nn.Sigmoid)),
              "digits, 10x8 conv sigmoid, default init, Adam 1e-3"),
    _scenario("cnn1d_tiny_init_vanishing", "vanishing", "test",
              lambda: _on("mnist1d", "momentum", 0.01)(init_(_cnn(8, 16, data="mnist1d"), "normal", std=0.01)),
              "MNIST-1D, 8x16 Conv1d ReLU, N(0, 0.01²) weights (default biases), SGD+momentum 0.01",
              data="mnist1d"),
    _scenario("cnn1d_adamw_high_lr_exploding", "exploding", "test",
              lambda: _on("mnist1d", "adamw", 0.1)(_cnn(3, 32, data="mnist1d")),
              "MNIST-1D, 3x32 Conv1d ReLU, AdamW at lr 0.1: weights and gradient norm grow >100x, loss stays "
              "finite", data="mnist1d"),
    _scenario("cnn_tanh_large_init_saturation", "saturation", "dev",
              lambda: _on("digits", "adam", 1e-3)(init_(_cnn(3, 16, nn.Tanh), "normal", std=1.0)),
              "digits, 3x16 conv tanh, N(0, 1) init, Adam 1e-3"),
    _scenario("cnn1d_sigmoid_large_init_saturation", "saturation", "test",
              lambda: _on("mnist1d", "momentum", 0.01)(init_(_cnn(3, 32, nn.Sigmoid, data="mnist1d"), "normal",
                                                              std=2.0)),
              "MNIST-1D, 3x32 Conv1d sigmoid, N(0, 2²) init, SGD+momentum 0.01", data="mnist1d"),
    _scenario("cnn1d_negative_bias_dead", "dead_units", "test",
              lambda: _on("mnist1d", "adamw", 1e-3)(init_(_cnn(3, 32, data="mnist1d"), "he", bias=-3.0)),
              "MNIST-1D, 3x32 Conv1d ReLU, He init, biases -3, AdamW 1e-3", data="mnist1d"),
    _scenario("cnn1d_huge_lr_non_finite", "non_finite", "dev",
              lambda: _on("mnist1d", "momentum", 10.0)(_cnn(3, 32, data="mnist1d")),
              "MNIST-1D, 3x32 Conv1d ReLU, SGD+momentum at lr 10", data="mnist1d"),
    _scenario("cnn_tiny_lr_plateau", "plateau", "test",
              lambda: _on("digits", "momentum", 1e-6)(_cnn(2, 16)),
              "digits, 2x16 conv ReLU, SGD+momentum at lr 1e-6", check_steps=60, lr_scale=1e4),
    _scenario("cnn_tanh_offset_bad_scale", "bad_data_scale", "dev",
              lambda: _on("digits", "adam", 1e-3, inputs=lambda x: x + 50)(_cnn(2, 16, nn.Tanh)),
              "digits, 2x16 conv tanh, inputs offset by +50, Adam 1e-3", check_steps=60),
    _scenario("cnn_relu_x255_bad_scale", "bad_data_scale", "test",
              lambda: _on("digits", "momentum", 0.01, inputs=lambda x: 255 * x)(_cnn(2, 16)),
              "digits, 2x16 conv ReLU, inputs x255 (std ~250, as raw 8-bit pixels), SGD+momentum 0.01"),
]
