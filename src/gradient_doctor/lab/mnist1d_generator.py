"""MNIST-1D (Greydanus 2020), generated locally from its ten templates: nothing is downloaded.

    >>> x, y = generate(num_samples=5000, seed=42)     # x: (5000, 40) float64, y: (5000,) int64, shuffled

A port of the reference generator (github.com/greydanus/mnist1d, `mnist1d/data.py` `make_dataset` and
`mnist1d/transform.py`, package version 0.0.2) with its default arguments, in numpy only (no scipy):
the same draws from `numpy.random.RandomState(seed)` in the same order, so the same seed gives the same
data as `mnist1d.data.make_dataset` (to float rounding). Per example: pad the template with 36–60 zeros,
stretch to 72 points, scale by U(0.8, 1.2), roll by 0–47 places, fill the zeros with smoothed noise
(Gaussian filter σ = 2 of N(0, 0.25²)), add N(0, 0.02²) noise, shear, and subsample to 40 points.
The whole set is then standardised to mean 0, standard deviation 1.
"""

from __future__ import annotations

import numpy as np

TEMPLATE_LEN, PADDING, SCALE_COEFF, MAX_TRANSLATION = 12, (36, 60), 0.4, 48
CORR_NOISE_SCALE, IID_NOISE_SCALE, SHEAR_SCALE, FINAL_SEQ_LENGTH = 0.25, 2e-2, 0.75, 40
_STRETCHED = TEMPLATE_LEN + PADDING[1]  # 72 points after padding and stretching
_EPS = 1e-8  # lifts the template off zero, so that padding (exact zeros) can be told from signal

_DIGITS = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


def templates() -> np.ndarray:
    """The ten digit templates, (10, 12): each whitened, shifted to start and end at 0, divided by 6.

    >>> templates()[3]       # the template of digit 3
    """
    x = _DIGITS - _DIGITS.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def generate(num_samples: int = 5000, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """`num_samples // 10` examples of each digit, shuffled and standardised over the whole set.

    >>> x, y = generate(1000, seed=0)      # x[:800] is the reference's train part, x[800:] its test part
    """
    rng = np.random.RandomState(seed)
    per_class = num_samples // 10
    xs = np.stack([_transform(template, rng) for template in templates() for _ in range(per_class)])
    ys = np.repeat(np.arange(10), per_class)
    order = rng.permutation(len(ys))
    xs, ys = xs[order], ys[order]
    return (xs - xs.mean()) / xs.std(), ys


def _transform(template: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """One noisy example of `template`, drawing from `rng` exactly as the reference `transform` does."""
    low, high = PADDING
    padding = low + int(rng.rand() * (high - low + 1))
    x = _resample(np.concatenate([template + _EPS, np.zeros(padding)]), _STRETCHED)
    x = x * (1 + SCALE_COEFF * (rng.rand() - 0.5))
    x = np.roll(x, rng.choice(MAX_TRANSLATION))
    corr_noise = _gaussian_filter(CORR_NOISE_SCALE * rng.randn(_STRETCHED), sigma=2.0)
    x = np.where(x != 0, x, corr_noise)
    x = x + IID_NOISE_SCALE * rng.randn(_STRETCHED)
    x = x - SHEAR_SCALE * (rng.rand() - 0.5) * np.linspace(-0.5, 0.5, _STRETCHED)
    return _resample(x, FINAL_SEQ_LENGTH)


def _resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of `x` onto `n` evenly spaced points over the same span."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


def _gaussian_filter(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """`scipy.ndimage.gaussian_filter(x, sigma)` for 1-d `x`: radius int(truncate·σ + ½), mirrored edges."""
    radius = int(truncate * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return np.convolve(np.pad(x, radius, mode="symmetric"), kernel / kernel.sum(), mode="valid")
