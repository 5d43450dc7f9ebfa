"""lab residual (quick) and the blocks it builds: each block's defining property checked in plain torch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import TOO_FEW
from gradient_doctor.lab.experiments._blocks import Block, block_net, linear_depth


def test_skipinit_starts_as_the_identity():
    """alpha = 0: every block passes x through, so the net is head(relu(stem(x)))."""
    torch.manual_seed(0)
    model = block_net("skipinit", 6, 16, 40)
    x = torch.randn(32, 40)
    stem, head = model[0], model[-1]
    assert torch.allclose(model(x), head(torch.relu(stem(x))), atol=1e-6)


def test_v1_and_v2_blocks_are_the_papers_formulas():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    for kind in ("v1", "v2"):
        block = Block(kind, 16).train()

        def bn(z):  # batch statistics, biased variance, gamma 1 and beta 0 at init
            return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

        w1, b1, w2, b2 = block.first.weight, block.first.bias, block.second.weight, block.second.bias
        if kind == "v1":
            expected = torch.relu(x + bn(torch.relu(bn(x @ w1.T + b1)) @ w2.T + b2))
        else:
            expected = x + torch.relu(bn(torch.relu(bn(x)) @ w1.T + b1)) @ w2.T + b2
        assert torch.allclose(block(x), expected, atol=1e-5), kind


def test_unnormalised_stack_grows_and_v2_does_not():
    """x + W2 relu(W1 x) with He init on both layers: E|W2 relu(W1 x)|² = 2 E|x|², uncorrelated with x, so the
    variance triples each block (rms × sqrt(3) ≈ 1.73); v2's BN inside the branch keeps the growth small."""
    torch.manual_seed(0)
    x = torch.randn(512, 64)
    for kind, low, high in (("unnormalised", 1.55, 1.9), ("v2", 0.0, 1.25)):
        blocks = [Block(kind, 64) for _ in range(12)]
        h, growth = x, []
        for block in blocks:
            with torch.no_grad():
                out = block(h)
            growth.append(float(out.pow(2).mean().sqrt() / h.pow(2).mean().sqrt()))
            h = out
        per_block = math.exp(sum(map(math.log, growth)) / len(growth))
        assert low < per_block < high, (kind, per_block)


def test_rows_claims_and_depth(quick_lab):
    result, out = quick_lab("residual")
    assert {r["linear_layers"] for r in result.rows} == {2 * b + 2 for b in (2, 8)}
    assert linear_depth(block_net("v1", 8, 8, 40)) == 18
    assert [c.verdict for c in result.claims] == [TOO_FEW, TOO_FEW]  # one seed, the full run has three
    assert "He et al. 2016" in result.claims[0].claim and "explodes" in result.claims[1].claim
    assert (out / "residual.md").read_text().count("| unnormalised |") == 2


def test_plain_ratio_at_init_matches_plain_torch(quick_lab):
    """‖∂L/∂(stem output)‖ / ‖∂L/∂logits‖ of the plain kind, recomputed with retain_grad."""
    result, _ = quick_lab("residual")
    (row,) = [r for r in result.rows if (r["kind"], r["blocks"]) == ("plain", 2)]
    data = mnist1d()
    torch.manual_seed(0)
    model = block_net("plain", 2, 32, 40)
    stem = model[0](data.x_train[:256])
    stem.retain_grad()
    logits = model[2:](model[1](stem))
    logits.retain_grad()
    nn.functional.cross_entropy(logits, data.y_train[:256]).backward()
    assert row["ratio_at_init"] == pytest.approx(float(stem.grad.norm() / logits.grad.norm()), rel=1e-4)
