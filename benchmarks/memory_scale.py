"""Memory and record size of `gd.watch` on a GPT-2-small-sized model (124 M parameters), on the CPU.

    $ python benchmarks/memory_scale.py [--steps 100]

The gradients are fixed (one random draw) and the optimizer's learning rate is 0, so every
`optimizer.step()` costs only what the probe does at it: the step-time figure is the probe's own
cost per step (every 50th step also measures details and updates). Reported: parameter memory; the
probe's persistent tensors and its step buffer at `flush_every` (what it holds between flushes);
the entries kept across update steps (a sample of at most 4,096 per parameter tensor); the record's size, per
step and per 10,000 steps; and the error of the sampled update norms against exact ones (plain torch, a full
copy) over one Adam step with real gradients.
Figures are in docs/integrations.md ("Memory and scale"). No forward pass runs, so the record has no
activation blobs (5 + 1 values per layer every 50th step: under 1 % of the size here).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.probe.gradients import UPDATE_SAMPLE


def gpt2_small_parameters(vocab=50257, d=768, layers=12, heads=12, ff=3072, ctx=1024) -> nn.Module:
    """GPT-2 small's parameter tensors (tied embedding/head), as benchmarks/checkup_time.py builds them;
    no forward is needed here."""
    block = nn.TransformerEncoderLayer(d, heads, ff, activation="gelu", batch_first=True, norm_first=True)
    model = nn.ModuleDict({
        "wte": nn.Embedding(vocab, d), "wpe": nn.Embedding(ctx, d),
        "blocks": nn.TransformerEncoder(block, layers, enable_nested_tensor=False),
        "ln_f": nn.LayerNorm(d), "head": nn.Linear(d, vocab, bias=False),
    })
    model.head.weight = model.wte.weight
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    steps = parser.parse_args().steps
    torch.manual_seed(0)
    model = gpt2_small_parameters()
    params = list(model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.SGD(params, lr=0.0)

    def timed_steps(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            opt.step()
        return (time.perf_counter() - start) / n

    plain = timed_steps(10)
    with tempfile.TemporaryDirectory() as root:
        flush_every = 100
        with gd.watch(model, opt, log_dir=root, flush_every=flush_every) as run:
            probe = run._probe
            persistent = probe.numel.nbytes + probe.rollup.param_index.nbytes + probe.rollup.layer_index.nbytes
            kept: list[int] = []
            measure = probe.updates.measure

            def measure_and_count(**kwargs):
                kept.append(sum(t.nbytes for t in probe.updates._before))
                return measure(**kwargs)

            probe.updates.measure = measure_and_count
            watched = timed_steps(steps)
            buffer = sum(v.values.nbytes for v in probe.completed)
            width = probe.completed[-1].values.numel() if probe.completed else 0
        size = os.path.getsize(os.path.join(root, "run.db"))
    layers, tensors = len(probe.layers), len(probe.params)
    print(f"model: {sum(p.numel() for p in params) / 1e6:.1f} M parameters, {param_bytes / 2**20:.0f} MiB; "
          f"{layers} layers, {tensors} parameter tensors; threads {torch.get_num_threads()}")
    print(f"probe persistent tensors: {persistent} B; step buffer at flush_every={flush_every}: "
          f"{width * 8 * flush_every / 2**10:.0f} KiB (measured {buffer / 2**10:.0f} KiB after {steps} steps) "
          f"= {100 * (persistent + width * 8 * flush_every) / param_bytes:.3f} % of parameter memory")
    print(f"transient on update steps (every 50th): {max(kept) / 2**10:.0f} KiB kept "
          f"= {100 * max(kept) / param_bytes:.3f} % of parameter memory")
    print(f"optimizer.step() with lr=0: plain {plain * 1e3:.1f} ms, watched {watched * 1e3:.1f} ms "
          f"(probe: {(watched - plain) * 1e3:.1f} ms per step, mean over {steps} steps)")
    print(f"record: {size / 2**10:.0f} KiB after {steps} steps = {size / steps / 2**10:.1f} KiB per step, "
          f"{size / steps * 1e4 / 2**20:.0f} MiB per 10,000 steps")

    print(sampled_update_error(model))


def sampled_update_error(model: nn.Module) -> str:
    """Relative error of the watched (sampled) update norms against exact ones on an Adam step (lr 1e-3, random
    gradients, after 5 warm-up steps so that the moments differ across entries), per parameter tensor: the ‖Δw‖
    the record holds vs ‖w_after − w_before‖ from a full plain copy."""
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    for _ in range(6):
        for p in params:
            p.grad = torch.randn_like(p) * torch.rand_like(p)
        opt.step()
    with gd.watch(model, opt, update_every=1, activations=False) as run:
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        opt.step()
        exact = {name: float((p.detach() - before[name]).norm()) for name, p in model.named_parameters()}
        del before
        opt.step()  # completes the recorded step
    sizes = dict(model.named_parameters())
    sampled = [name for name in run.params if sizes[name].numel() > UPDATE_SAMPLE]
    errors = sorted(abs(run.history("update_norm", name)[0] / exact[name] - 1) for name in sampled)
    return (f"sampled update norms vs exact (Adam step; the {len(errors)} of {len(run.params)} parameter tensors "
            f"over {UPDATE_SAMPLE} entries; the others are exact): median relative error {errors[len(errors) // 2]:.2%}, "
            f"max {errors[-1]:.2%}")


if __name__ == "__main__":
    main()
