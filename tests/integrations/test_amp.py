"""Mixed precision on CPU: under bf16 autocast, and fp16 autocast with a GradScaler, every recorded
number equals plain torch's (`tests.test_watch.Reference`: its own optimizer step hooks see the
gradients `optimizer.step()` applies — unscaled by the GradScaler — and its forward hooks the
low-precision activation outputs).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from tests.test_watch import MLP_LAYERS, Reference, check_run, make_mlp, mlp_batch


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_records_what_plain_torch_computes(dtype):
    model = make_mlp(seed=20)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # fp16 needs loss scaling; 2^10 keeps these losses finite, so no iteration is skipped
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, enabled=dtype == torch.float16)
    ref = Reference(model, opt)
    dtypes = []
    model[1].register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    with gd.watch(model, opt, detail_every=1, update_every=1, activation_every=1) as run:
        for s in range(3):
            x, y = mlp_batch(s)
            opt.zero_grad()
            with torch.autocast("cpu", dtype=dtype):
                out = model(x)
            loss = nn.functional.mse_loss(out.float(), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            run.step(loss=loss)
            ref.set_loss(loss)
    ref.close()
    assert len(ref.steps) == 3  # no skipped step
    want, _ = check_run(run, ref, MLP_LAYERS, detail_every=1, update_every=1, activation_every=1)
    assert set(dtypes) == {dtype}  # the activations measured really are low-precision
    assert np.isfinite(want["grad_norm"][:, [0, 2, 4, 6, 8]]).all()
