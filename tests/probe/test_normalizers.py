"""Normalisers are recognised by what they do on the batch, whatever their class: checked against the plain-torch
definition (output unchanged when the input is scaled), and end to end on pre-norm stacks built with a custom norm
class, whose backward signal plain torch measures."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.probe.batch.normalizers import KNOWN, NormCandidates
from gradient_doctor.probe.layers import discover


class OwnRMSNorm(nn.Module):
    """An RMSNorm written the way model families write their own (Llama, Qwen2, Mamba, T5)."""

    def __init__(self, width: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)


class Gain(nn.Module):
    """A per-feature gain: vector parameters too, but scale-equivariant, not a normaliser."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.full((width,), 2.0))

    def forward(self, x):
        return self.weight * x


class Block(nn.Module):
    def __init__(self, width: int, norm: type[nn.Module]):
        super().__init__()
        self.norm = norm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        return x + self.mlp(self.norm(x))


class PreNormLM(nn.Module):
    """A pre-norm residual stack over small embeddings (std 0.02): the stream's backward signal grows toward the
    input through the norms' 1/RMS, by design."""

    def __init__(self, norm: type[nn.Module], depth: int = 6, width: int = 32, vocab: int = 50):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, width)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.Sequential(*[Block(width, norm) for _ in range(depth)])
        self.norm = norm(width)
        self.head = nn.Linear(width, vocab)

    def forward(self, ids):
        return self.head(self.norm(self.blocks(self.embed(ids))))


def plain_scale_invariant(module: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        y, scaled = module(x), module(4 * x)
    return bool((scaled - y).norm() <= 0.1 * y.norm())


def test_candidates_are_judged_as_plain_torch_judges_scale_invariance():
    model = nn.Sequential(nn.Linear(8, 16), OwnRMSNorm(16), Gain(16), nn.LayerNorm(16), nn.Linear(16, 4))
    x = torch.randn(32, 8)
    layers, _ = discover(model)
    with NormCandidates(layers) as candidates:
        model(x)
    hidden = model[0](x)
    assert candidates.scale_invariant() == {"1"}
    assert plain_scale_invariant(model[1], hidden) and not plain_scale_invariant(model[2], model[1](hidden))
    assert [layer.name for layer in candidates.candidates] == ["1", "2"]  # nn.LayerNorm is known by class


def test_a_pre_norm_stack_with_its_own_norm_class_is_judged_like_one_with_torchs():
    ids = torch.randint(0, 50, (8, 16))
    own, torchs = PreNormLM(OwnRMSNorm), PreNormLM(lambda width: nn.RMSNorm(width, eps=1e-6))
    torchs.load_state_dict(own.state_dict())
    with torch.no_grad():
        assert torch.allclose(own(ids), torchs(ids), atol=1e-5)  # the same function
    diag_own = gd.checkup(own, ids, targets=ids, loss_fn=lambda out, y: nn.functional.cross_entropy(
        out.flatten(0, 1), y.flatten()))
    own_norms = [layer.name for layer in diag_own.measurement.layers if layer.normalizes]
    assert len(own_norms) == 7  # six blocks' norms and the final one
    assert diag_own.healthy, [(f.kind, f.severity, f.summary) for f in diag_own.findings]


def test_the_stream_grows_backward_in_plain_torch_yet_it_is_not_an_explosion():
    """The label, in plain torch: the gradient at the first block's input exceeds the last block's by a wide
    margin (the architecture), and the stack trains: 30 AdamW steps lower the loss."""
    model = PreNormLM(OwnRMSNorm)
    ids = torch.randint(0, 50, (8, 16))
    streams = []
    hooks = [block.register_forward_pre_hook(lambda m, a: streams.append(a[0].retain_grad() or a[0]))
             for block in (model.blocks[0], model.blocks[-1])]
    loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
    loss.backward()
    for h in hooks:
        h.remove()
    assert streams[0].grad.norm() / streams[1].grad.norm() > 3
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = loss.item()
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * start


def test_a_registered_class_counts_as_a_normaliser_and_bad_registrations_are_refused():
    class Opaque(nn.Module):  # needs two arguments: the behavioural test cannot call it alone
        def __init__(self, width):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))

        def forward(self, x, scale=None):
            return self.weight * x / x.norm(dim=-1, keepdim=True)

    before = list(KNOWN)
    try:
        gd.register_normalization(Opaque)
        model = nn.Sequential(nn.Linear(4, 8), Opaque(8), nn.Linear(8, 2))
        measured = gd.checkup(model, torch.randn(16, 4)).measurement
        assert [layer.normalizes for layer in measured.layers] == [False, True, False]
    finally:
        KNOWN[:] = before
    with pytest.raises(gd.InvalidType, match="nn.Module subclasses"):
        gd.register_normalization("LayerNorm")
