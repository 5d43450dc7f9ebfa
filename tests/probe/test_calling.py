"""checkup's loss contract: `loss_fn(output, targets)` gets the output as the model returns it."""

import torch
from torch import nn

import gradient_doctor as gd


class LogitsAndHidden(nn.Module):
    """Returns (logits, hidden), as word_language_model's RNNModel does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(8, 16)
        self.decoder = nn.Linear(16, 5)

    def forward(self, x):
        out, hidden = self.rnn(x)
        return self.decoder(out), hidden


def test_a_tuple_output_reaches_the_loss_function_as_returned():
    model, x, y = LogitsAndHidden(), torch.randn(12, 4, 8), torch.randint(0, 5, (12, 4))
    seen = []

    def loss_fn(output, targets):
        seen.append(type(output))
        logits, _ = output
        return nn.functional.cross_entropy(logits.reshape(-1, 5), targets.reshape(-1))

    measured = gd.checkup(model, x, targets=y, loss_fn=loss_fn).measurement
    assert seen == [tuple]
    with torch.no_grad():
        plain = nn.functional.cross_entropy(model(x)[0].reshape(-1, 5), y.reshape(-1))
    assert measured.loss_source == "loss_fn"
    assert abs(measured.loss - float(plain)) < 1e-6
