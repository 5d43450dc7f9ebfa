"""The edge of chaos: weight and bias scales that put a deep network at chi_1 = 1 for its activation.

    >>> critical_point(nn.ReLU(), bias_variance=1e-5)           # (sqrt(2), 0): He init
    (1.414..., 0.0)
    >>> critical_point(nn.Tanh(), bias_variance=1e-5)           # sigma_w slightly above 1
    (1.02..., 0.00316...)

Mean-field theory of wide random networks with weight variance sigma_w^2 / fan_in and bias variance sigma_b^2
(Poole et al. 2016; Schoenholz et al. 2017): the pre-activation variance settles at the fixed point
q* = sigma_w^2 E[phi(sqrt(q*) z)^2] + sigma_b^2 (z ~ N(0, 1)), and a backpropagated signal is multiplied per layer
by chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]. chi_1 < 1 vanishes, > 1 explodes (chaos); chi_1 = 1 is the critical
line, where depth scales diverge. For each q, chi_1 = 1 fixes sigma_w^2 = 1 / E[phi'^2] and then the fixed point
fixes sigma_b^2(q) = q - E[phi^2] / E[phi'^2]; we solve sigma_b^2(q) = bias_variance for q. Small bias variance
gives small q*, where tanh is nearly linear and its Jacobian spectrum concentrates near 1 (dynamical isometry with
orthogonal weights, Pennington et al. 2017). Positively homogeneous activations (ReLU, leaky ReLU, linear) have
sigma_b^2(q) = 0 for every q: their critical point is sigma_b = 0, sigma_w^2 = 1 / E[phi'^2] (2 for ReLU: He).
Expectations are 100-point Gauss-Hermite quadratures (exact for the homogeneous ones), phi' by autograd.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .following import leaky_slope

_NODES = 100  # even: no node at the kink of a rectifier
_GRID = torch.logspace(-8, 4, 241, dtype=torch.float64)  # candidate q*, then bisection between neighbours


def critical_point(activation: nn.Module | None, bias_variance: float) -> tuple[float, float]:
    """(sigma_w, sigma_b) with chi_1 = 1 for an elementwise `activation` (None: linear), sigma_b^2 = bias_variance
    where the critical line reaches it and 0 where it cannot (homogeneous activations)."""
    phi = _elementwise(activation)

    def bias_at(q: Tensor) -> Tensor:
        square, slope_square = _moments(phi, q)
        return q - square / slope_square

    reached = (bias_at(_GRID) >= bias_variance).nonzero()
    if len(reached) == 0:
        return 1.0 / math.sqrt(float(_moments(phi, torch.ones(1, dtype=torch.float64))[1])), 0.0
    k = int(reached[0])
    q = _bisect(lambda q: float(bias_at(q.reshape(1))) - bias_variance, _GRID[max(k - 1, 0)], _GRID[k])
    return 1.0 / math.sqrt(float(_moments(phi, q.reshape(1))[1])), math.sqrt(bias_variance)


def _elementwise(activation: nn.Module | None) -> Callable[[Tensor], Tensor]:
    if activation is None:
        return lambda x: x
    slope = leaky_slope(activation)
    if slope is not None:
        return lambda x: F.leaky_relu(x, slope)
    module = copy.deepcopy(activation).double().eval()
    if hasattr(module, "inplace"):
        module.inplace = False
    return module


def _moments(phi: Callable[[Tensor], Tensor], q: Tensor) -> tuple[Tensor, Tensor]:
    """E[phi(sqrt(q) z)^2] and E[phi'(sqrt(q) z)^2] for each q (a 1-d float64 tensor)."""
    z, w = _quadrature()
    with torch.enable_grad():
        x = (q.sqrt()[:, None] * z).requires_grad_(True)
        y = phi(x)
        (slope,) = torch.autograd.grad(y.sum(), x)
    return (y.detach() ** 2 * w).sum(1), (slope**2 * w).sum(1)


@functools.cache
def _quadrature() -> tuple[Tensor, Tensor]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(_NODES)  # weight function exp(-z^2 / 2)
    return torch.from_numpy(nodes), torch.from_numpy(weights / math.sqrt(2 * math.pi))


def _bisect(f: Callable[[Tensor], float], low: Tensor, high: Tensor, steps: int = 60) -> Tensor:
    """A root of f between low and high (f(low) < 0 <= f(high)), bisected in log space."""
    for _ in range(steps):
        mid = (low * high).sqrt()
        low, high = (mid, high) if f(mid) < 0 else (low, mid)
    return high
