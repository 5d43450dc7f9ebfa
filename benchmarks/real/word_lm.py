"""Word-level language models of pytorch/examples' word_language_model design, written here from its description:
an `nn.Embedding` encoder (uniform ±0.1), an LSTM or a post-norm Transformer encoder (sinusoidal positions, the
embedding scaled by sqrt(d)), a linear decoder (uniform ±0.1, zero bias); inputs are (time, batch) token ids.

    >>> WordLM("LSTM", vocab=2000)(torch.randint(0, 2000, (35, 8))).shape
    torch.Size([35, 8, 2000])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class WordLM(nn.Module):
    """kind "LSTM" or "Transformer"; returns the decoder's logits (time, batch, vocab)."""

    def __init__(self, kind: str, vocab: int, width: int = 128, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.kind, self.width = kind, width
        self.encoder = nn.Embedding(vocab, width)
        self.drop = nn.Dropout(dropout)
        if kind == "LSTM":
            self.body = nn.LSTM(width, width, layers, dropout=dropout)
        else:
            layer = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout)
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.register_buffer("positions", _sinusoids(512, width), persistent=False)
        self.decoder = nn.Linear(width, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, ids: Tensor) -> Tensor:
        x = self.encoder(ids)
        if self.kind == "LSTM":
            out, _ = self.body(self.drop(x))
        else:
            mask = nn.Transformer.generate_square_subsequent_mask(len(ids))
            out = self.body(self.drop(x * math.sqrt(self.width) + self.positions[: len(ids)]), mask)
        return self.decoder(self.drop(out))


def _sinusoids(length: int, width: int) -> Tensor:
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, width, 2) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return table.unsqueeze(1)
