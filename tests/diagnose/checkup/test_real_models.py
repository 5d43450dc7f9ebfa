"""Models nobody here wrote, at their library's own init: their labels in plain torch, then checkup's verdict."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from gradient_doctor.diagnose import checkup

transformers = pytest.importorskip("transformers")


def t5_small() -> torch.nn.Module:
    """T5-small's shape (d_model 512, 6 layers, 8 heads) with a small vocabulary: its tied lm_head has a gain of about
    sqrt(d_model), undone by the functional d_model^-0.5 rescale of the decoder's output just below it."""
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=1000, d_model=512, d_ff=2048, num_layers=6, num_heads=8, d_kv=64,
                                   decoder_start_token_id=0, pad_token_id=0)
    return transformers.T5ForConditionalGeneration(config)


def test_t5_small_is_healthy_at_its_own_init():
    model = t5_small()
    ids = torch.randint(1, 1000, (4, 32), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        output = model(input_ids=ids, labels=ids, output_hidden_states=True)
        hidden = output.decoder_hidden_states
        first, last = torch.autograd.grad(output.loss, [hidden[1], hidden[-2]])
        ratio = float(first.norm() / last.norm())
        # plain torch: the decoder stream's gradient neither vanishes nor explodes (within the 6ξ band e^±3)
        assert math.exp(-3) < ratio < math.exp(3)
        diag = checkup(model, {"input_ids": ids, "labels": ids})
    assert diag.healthy, [(f.kind, f.severity, f.summary) for f in diag.findings]
