"""Update norms ‖Δw‖ from the entries kept across a step: exact for small tensors, a sample for large ones."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.probe.gradients import UPDATE_SAMPLE
from gradient_doctor.probe.sampling import sample_stride


def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, int(n ** 0.5) + 1))


def test_sample_stride_keeps_at_most_the_sample_with_a_prime_stride():
    assert sample_stride(UPDATE_SAMPLE, UPDATE_SAMPLE) == 1
    for numel in (UPDATE_SAMPLE + 1, 256 * 256, 768 * 768, 50257 * 768):
        stride = sample_stride(numel, UPDATE_SAMPLE)
        assert _is_prime(stride) and len(range(0, numel, stride)) <= UPDATE_SAMPLE
        assert not any(_is_prime(s) for s in range(math.ceil(numel / UPDATE_SAMPLE), stride))  # the smallest


def test_update_norms_exact_for_small_and_within_5_percent_for_large_tensors():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 256), nn.Tanh(), nn.Linear(256, 8))  # 131,072 entries; 2,048
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 512), torch.randn(64, 8)
    exact = []
    with gd.watch(model, opt, update_every=1, activations=False) as run:
        for _ in range(5):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            exact.append([float((p.detach() - b).norm()) for p, b in zip(model.parameters(), before)])
    exact = np.array(exact)
    recorded = np.stack([run.history("update_norm", name) for name in run.params], axis=1)
    np.testing.assert_allclose(recorded[:, 1:], exact[:, 1:], rtol=1e-6)  # bias and the small layer: every entry
    np.testing.assert_allclose(recorded[:, 0], exact[:, 0], rtol=0.05)  # 131,072 entries from a sample of 3,856
    assert not np.allclose(recorded[:, 0], exact[:, 0], rtol=1e-6)  # it is a sample, not the whole tensor


def test_kept_entries_are_bounded_by_the_sample_per_tensor():
    model = nn.Linear(1024, 1024)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, update_every=1, activations=False) as run:
        model(torch.randn(4, 1024)).sum().backward()
        run._probe.updates.snapshot()
        kept = sum(t.numel() for t in run._probe.updates._before)
        run._probe.updates.discard()
        opt.step()
    assert kept <= 2 * UPDATE_SAMPLE and kept < 0.01 * sum(p.numel() for p in model.parameters())
