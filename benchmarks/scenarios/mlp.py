"""MLP scenarios on scikit-learn's digits (64 features) and MNIST-1D (40 features), 10 classes each.

    >>> [s.name for s in SCENARIOS if s.label == "healthy"]
    >>> setup = SCENARIOS[0].make(); SCENARIOS[0].check(setup)

Broken scenarios name the healthy one on the same data as `reference`: mlp_relu_healthy on digits,
mlp_mnist1d_healthy on MNIST-1D.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from .base import Scenario, Setup
from .feedforward import freeze_, init_, on, scenario

FEATURES = {"digits": 64, "mnist1d": 40}
REFERENCES = {"digits": "mlp_relu_healthy", "mnist1d": "mlp_mnist1d_healthy"}


def _mlp(depth: int, width: int, activation: type[nn.Module] = nn.ReLU, data: str = "digits",
         norm: type[nn.Module] | None = None, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    fan_in = FEATURES[data]
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), *([norm(width)] if norm else []), activation()]
        fan_in = width
    return nn.Sequential(*layers, nn.Linear(fan_in, 10))


class _ResidualMLP(nn.Module):
    """x -> stem -> `blocks` pre-LayerNorm residual blocks (x + W2 relu(W1 LN(x))) -> head."""

    def __init__(self, blocks: int, width: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Linear(FEATURES["digits"], width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.ReLU(),
                                                  nn.Linear(width, width)) for _ in range(blocks))
        self.head = nn.Linear(width, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def _layernorm_first(first_std: float, seed: int = 0) -> nn.Sequential:
    """A wide first layer with large weights, followed by LayerNorm: its gradient is ~1/first_std of the others'
    (LayerNorm is scale-invariant), yet the net trains normally."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 256), nn.LayerNorm(256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    nn.init.normal_(net[0].weight, std=first_std)
    return net


def _spiked(make: Callable[[], Setup], batch: int, factor: float) -> Callable[[], Setup]:
    """`make`, with the training samples of batch `batch` (its rows in stored order) scaled by `factor`: a corrupted
    shard that comes back once an epoch (partly split over two batches, since the data does not divide into whole
    batches); the held-out inputs are untouched."""
    def build() -> Setup:
        setup = make()
        inputs, targets = setup.train
        inputs = inputs.clone()
        inputs[batch * setup.batch_size:(batch + 1) * setup.batch_size] *= factor
        setup.train = (inputs, targets)
        return setup
    return build


_scenario = partial(scenario, "mlp", REFERENCES)

SCENARIOS: list[Scenario] = [
    # --- healthy controls (several are hard negatives: deep, normalised, small-gradient layer, high lr) ---------
    _scenario("mlp_relu_healthy", "healthy", "dev",
              lambda: on("digits", "adam", 1e-3)(_mlp(4, 64)), "4x64 ReLU, default init, Adam 1e-3"),
    _scenario("mlp_mnist1d_healthy", "healthy", "dev",
              lambda: on("mnist1d", "adamw", 3e-3)(_mlp(3, 128, data="mnist1d")),
              "MNIST-1D, 3x128 ReLU, default init, AdamW 3e-3", data="mnist1d", steps=200, check_steps=100),
    _scenario("mlp_he_momentum_healthy", "healthy", "test",
              lambda: on("digits", "momentum", 0.05)(init_(_mlp(3, 128), "he")),
              "3x128 ReLU, He init, SGD+momentum 0.05"),
    _scenario("mlp_tanh_xavier_healthy", "healthy", "dev",
              lambda: on("digits", "sgd", 0.1)(init_(_mlp(6, 64, nn.Tanh), "xavier")),
              "hard negative: 6x64 tanh, Xavier init, SGD 0.1"),
    _scenario("mlp_residual_deep_healthy", "healthy", "test",
              lambda: on("digits", "adamw", 1e-3)(_ResidualMLP(12, 32)),
              "hard negative: 12 pre-LayerNorm residual blocks (25 linear layers), width 32, AdamW 1e-3"),
    _scenario("mlp_batchnorm_healthy", "healthy", "dev",
              lambda: on("digits", "momentum", 0.05)(_mlp(8, 64, norm=nn.BatchNorm1d)),
              "hard negative: 8x64 Linear-BatchNorm-ReLU, SGD+momentum 0.05"),
    _scenario("mlp_sgd_high_lr_healthy", "healthy", "test",
              lambda: on("digits", "sgd", 1.0)(_mlp(2, 64)),
              "hard negative: 2x64 ReLU, plain SGD at a high but stable lr 1.0"),
    _scenario("mlp_small_grad_layer_healthy", "healthy", "test",
              lambda: on("digits", "adam", 1e-3)(_layernorm_first(5.0)),
              "hard negative: 64->256 first layer with N(0, 5²) weights then LayerNorm (first/last gradient "
              "ratio ~0.015), Adam 1e-3"),
    _scenario("mlp_narrow_deep_he_healthy", "healthy", "dev",
              lambda: on("digits", "momentum", 0.02)(init_(_mlp(10, 32), "he")),
              "10x32 ReLU, He init, SGD+momentum 0.02"),
    _scenario("mlp_amp_bf16_healthy", "healthy", "test",
              lambda: on("digits", "adam", 1e-3, autocast=torch.bfloat16)(_mlp(4, 64)),
              "AMP control: 4x64 ReLU under bfloat16 autocast, Adam 1e-3"),
    _scenario("mlp_frozen_layers_healthy", "healthy", "dev",
              lambda: on("digits", "adam", 3e-3)(freeze_(_mlp(6, 64), 2)),
              "frozen-layer control: 6x64 ReLU, first 2 Linear layers requires_grad=False (no gradient, not "
              "vanishing), Adam 3e-3"),
    _scenario("mlp_gelu_wide_healthy", "healthy", "test",
              lambda: on("mnist1d", "adamw", 2e-3)(_mlp(2, 256, nn.GELU, data="mnist1d")),
              "MNIST-1D, 2x256 GELU, AdamW 2e-3", data="mnist1d", steps=200, check_steps=100),
    # --- vanishing ----------------------------------------------------------------------------------------------
    _scenario("mlp_sigmoid_deep_vanishing", "vanishing", "dev",
              lambda: on("digits", "adam", 1e-3)(_mlp(16, 64, nn.Sigmoid)), "16x64 sigmoid, default init, Adam 1e-3"),
    _scenario("mlp_tanh_tiny_init_vanishing", "vanishing", "test",
              lambda: on("digits", "momentum", 0.01)(init_(_mlp(12, 64, nn.Tanh), "normal", std=0.02)),
              "12x64 tanh, N(0, 0.02²) init, SGD+momentum 0.01"),
    _scenario("mlp_relu_tiny_init_vanishing", "vanishing", "test",
              lambda: on("mnist1d", "adam", 1e-3)(init_(_mlp(12, 64, data="mnist1d"), "normal", std=0.01)),
              "MNIST-1D, 12x64 ReLU, N(0, 0.01²) weights (default biases), Adam 1e-3", data="mnist1d"),
    # --- exploding ----------------------------------------------------------------------------------------------
    _scenario("mlp_batchnorm_deep_exploding", "exploding", "dev",
              lambda: on("digits", "sgd", 0.01)(_mlp(40, 32, norm=nn.BatchNorm1d)),
              "40x32 Linear-BatchNorm-ReLU without skips (gradient grows ~1.2x per layer towards the input), "
              "SGD 0.01", steps=100),
    _scenario("mlp_momentum_high_lr_exploding", "exploding", "test",
              lambda: on("digits", "momentum", 0.5)(_mlp(3, 64)),
              "3x64 ReLU, SGD+momentum at lr 0.5: gradient norm grows >1000x yet stays finite"),
    _scenario("mlp_momentum_x1000_batch_spikes_exploding", "exploding", "test",
              _spiked(lambda: on("digits", "momentum", 0.05)(_mlp(3, 64)), batch=10, factor=1000.0),
              "loss spikes: 3x64 ReLU, SGD+momentum 0.05 (reaches ~97 % on clean data), the 64 training samples of "
              "batch 10 scaled x1000 (back once an epoch): the gradient norm spikes >1000x, the loss to 30-60, and "
              "training ends at chance, all finite"),
    # --- saturation ---------------------------------------------------------------------------------------------
    _scenario("mlp_tanh_large_init_saturation", "saturation", "dev",
              lambda: on("digits", "adam", 1e-3)(init_(_mlp(3, 64, nn.Tanh), "normal", std=1.0)),
              "3x64 tanh, N(0, 1) init (8x the default scale), Adam 1e-3"),
    _scenario("mlp_sigmoid_large_init_saturation", "saturation", "test",
              lambda: on("mnist1d", "sgd", 0.1)(init_(_mlp(2, 64, nn.Sigmoid, data="mnist1d"), "normal", std=2.0)),
              "MNIST-1D, 2x64 sigmoid, N(0, 2²) init, SGD 0.1", data="mnist1d"),
    # --- dead units ---------------------------------------------------------------------------------------------
    _scenario("mlp_relu_negative_bias_dead", "dead_units", "dev",
              lambda: on("digits", "adam", 1e-3)(init_(_mlp(3, 64), bias=-3.0)),
              "3x64 ReLU, biases initialised to -3, Adam 1e-3"),
    _scenario("mlp_he_negative_bias_dead", "dead_units", "test",
              lambda: on("mnist1d", "momentum", 0.01)(init_(_mlp(4, 64, data="mnist1d"), "he", bias=-2.0)),
              "MNIST-1D, 4x64 ReLU, He init, biases -2, SGD+momentum 0.01", data="mnist1d"),
    # --- non-finite ---------------------------------------------------------------------------------------------
    _scenario("mlp_sgd_huge_lr_non_finite", "non_finite", "dev",
              lambda: on("digits", "sgd", 50.0)(_mlp(3, 64)), "3x64 ReLU, SGD at lr 50"),
    _scenario("mlp_momentum_huge_lr_non_finite", "non_finite", "test",
              lambda: on("mnist1d", "momentum", 5.0)(_mlp(4, 64, data="mnist1d")),
              "MNIST-1D, 4x64 ReLU, SGD+momentum at lr 5", data="mnist1d"),
    # --- plateau (learning rate far too small) ------------------------------------------------------------------
    _scenario("mlp_adam_tiny_lr_plateau", "plateau", "dev",
              lambda: on("digits", "adam", 1e-6)(_mlp(4, 64)), "4x64 ReLU, Adam at lr 1e-6"),
    _scenario("mlp_sgd_tiny_lr_plateau", "plateau", "test",
              lambda: on("mnist1d", "sgd", 1e-5)(_mlp(3, 128, data="mnist1d")),
              "MNIST-1D, 3x128 ReLU, plain SGD at lr 1e-5", data="mnist1d", lr_scale=3e4),
    # --- bad data scale -----------------------------------------------------------------------------------------
    _scenario("mlp_sigmoid_offset_bad_scale", "bad_data_scale", "dev",
              lambda: on("digits", "adam", 1e-2, inputs=lambda x: x + 50)(_mlp(3, 64, nn.Sigmoid)),
              "3x64 sigmoid, inputs offset by +50, Adam 1e-2"),
    _scenario("mlp_tanh_raw_scale_bad_scale", "bad_data_scale", "test",
              lambda: on("digits", "momentum", 0.01, inputs=lambda x: 50 * x + 100)(_mlp(3, 64, nn.Tanh)),
              "3x64 tanh, inputs at pixel-like scale 50x + 100 (mean 100, std 49), SGD+momentum 0.01"),
]
