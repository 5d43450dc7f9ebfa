"""A lookup layer's gradient reaches only the rows of its batch's tokens: the run's vanishing rule leaves it out of
the depth comparison (and says so) instead of calling a healthy word-level LM's embedding vanishing."""

from __future__ import annotations

import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.diagnose.run.vanishing import vanishing_gradient
from gradient_doctor.record.history import read_history

VOCAB, WIDTH = 2000, 64


class WordLM(nn.Module):
    """Embedding -> LSTM -> Linear, the word_language_model design (uniform(-0.1, 0.1) encoder and decoder)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Embedding(VOCAB, WIDTH)
        self.rnn = nn.LSTM(WIDTH, WIDTH, 2)
        self.decoder = nn.Linear(WIDTH, VOCAB)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, ids):
        out, _ = self.rnn(self.encoder(ids))
        return self.decoder(out)


def corpus() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    zipf = 1.0 / torch.arange(1, VOCAB + 1).double()
    return torch.multinomial(zipf / zipf.sum(), 21 * 10 * 40, replacement=True, generator=generator).view(-1, 10)


def loss_of(model, data, i):
    x, y = data[i:i + 20], data[i + 1:i + 21]
    return nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))


def test_a_healthy_word_lm_is_not_vanishing_at_its_embedding():
    model, data = WordLM(), corpus()
    # the label, in plain torch: per entry the embedding's gradient is far below the decoder's (the old rule's
    # input), per touched row it is not, and SGD at the recipe's scale lowers the loss
    loss = loss_of(model, data, 0)
    loss.backward()
    grad = model.encoder.weight.grad
    touched = grad.abs().sum(1) > 0
    per_entry = grad.norm() / grad.numel() ** 0.5
    per_touched_entry = grad[touched].norm() / grad[touched].numel() ** 0.5
    decoder = model.decoder.weight.grad.norm() / model.decoder.weight.numel() ** 0.5
    assert per_entry / decoder < 0.05 < per_touched_entry / decoder
    model.zero_grad()

    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    with gd.watch(model, opt, every=1) as run:
        for step in range(40):
            opt.zero_grad()
            loss = loss_of(model, data, 20 * step)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            opt.step()
            run.step(loss=loss)
    losses = run.history("loss")
    assert losses[-5:].mean() < losses[:5].mean() - 0.5
    history = read_history(run)
    assert [history.layers[i] for i in history.sparse_gradient()] == ["encoder"]
    assert vanishing_gradient(history) == []
    assert not [f for f in run.diagnose().findings if f.severity != "info"]
