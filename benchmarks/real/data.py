"""Seeded data for the real-architecture zoo, nothing downloaded: token sequences from a sparse random Markov chain
(each token has a few likely successors, so a language model can learn it) and scikit-learn's digits as 32x32 RGB.

    >>> tokens(vocab=512, batch=8, length=32, step=0).shape
    torch.Size([8, 32])
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor
from torch.nn import functional as F

SUCCESSORS = 4  # likely next tokens per token


@lru_cache(maxsize=4)
def _chain(vocab: int) -> Tensor:
    generator = torch.Generator().manual_seed(1234)
    return torch.randint(0, vocab, (vocab, SUCCESSORS), generator=generator)


def tokens(vocab: int, batch: int, length: int, step: int) -> Tensor:
    """Batch `step` of (batch, length) token ids; 90 % of transitions follow the chain, 10 % are uniform."""
    generator = torch.Generator().manual_seed(10_000 + step)
    chain = _chain(vocab)
    out = torch.empty(batch, length, dtype=torch.long)
    out[:, 0] = torch.randint(0, vocab, (batch,), generator=generator)
    for t in range(1, length):
        pick = chain[out[:, t - 1], torch.randint(0, SUCCESSORS, (batch,), generator=generator)]
        noise = torch.randint(0, vocab, (batch,), generator=generator)
        out[:, t] = torch.where(torch.rand(batch, generator=generator) < 0.9, pick, noise)
    return out


@lru_cache(maxsize=1)
def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    images = (images - images.mean()) / images.std()
    return images, torch.tensor(digits.target)


def images(batch: int, step: int) -> tuple[Tensor, Tensor]:
    """Batch `step` of scikit-learn's digits as (batch, 3, 32, 32) standardised images and their labels."""
    x, y = _digits()
    generator = torch.Generator().manual_seed(20_000 + step)
    rows = torch.randint(0, len(y), (batch,), generator=generator)
    return x[rows], y[rows]
