"""Per-layer gradient histograms (log10 |g|): the probe's counts, the record, the HTML ridge and TensorBoard, each
against a plain-torch histogram of the same gradients, replayed here on each layer's concatenated gradients."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.probe.histograms import HIST_SAMPLE, _histogram, _tally, gradient_histograms
from gradient_doctor.probe.rollup import Rollup
from gradient_doctor.report.html import render

STEPS, DETAIL = 8, 3
EDGES = np.linspace(-40.0, 10.0, 101)  # half-decade bins of log10 |g|, 1e-40 … 1e10


def replay(grads: list[torch.Tensor]) -> tuple[np.ndarray, int, int]:
    """(counts per bin, zeros, non-finite) of one layer's gradients, in plain torch: histc of log10 |g| of
    its finite non-zero entries (float32, as trained), clamped into the edges' range."""
    g = torch.cat([t.detach().reshape(-1) for t in grads])
    finite = torch.isfinite(g)
    nonzero = finite & (g != 0)
    logs = torch.log10(g[nonzero].float().abs()).clamp(EDGES[0], EDGES[-1])
    counts = torch.histc(logs, bins=len(EDGES) - 1, min=EDGES[0], max=EDGES[-1])
    return counts.double().numpy(), int((g == 0).sum()), int((~finite).sum())


class Net(nn.Module):
    """An MLP, plus `side`: outside the optimizer, its gradient exactly zero (then spiked with inf/NaN)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
        self.side = nn.Linear(6, 4)

    def forward(self, x):
        return self.body(x) + 0.0 * self.side(x).sum(dim=1, keepdim=True)


@dataclass
class Trained:
    run: gd.Run
    layers: list[str]  # layers with parameters, forward order
    expected: dict[int, dict[str, tuple[np.ndarray, int, int]]]  # step -> layer -> replay


def train(tmp_path, **watch_kwargs) -> Trained:
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.body.parameters(), lr=0.1)
    x = torch.randn(32, 6)
    x[:, 0] = 0.0  # the first Linear's weight column 0 gets exact zero gradients
    y = torch.randn(32, 1)
    owned = {name: list(m.parameters(recurse=False)) for name, m in model.named_modules()
             if name and list(m.parameters(recurse=False))}
    expected = {}
    with gd.watch(model, opt, log_dir=tmp_path / "run", detail_every=DETAIL, update_every=DETAIL,
                  activation_every=DETAIL, flush_every=2, **watch_kwargs) as run:
        for step in range(STEPS):
            opt.zero_grad()
            model.side.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            model.side.weight.grad[0, :3] = torch.tensor([math.inf, -math.inf, math.nan])
            expected[step] = {name: replay([p.grad for p in params]) for name, params in owned.items()}
            opt.step()
            run.step()
    layers = [name for name in run.layers if name in owned]
    return Trained(run, layers, expected)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train(tmp_path_factory.mktemp("hist"))


def test_recorded_counts_equal_a_plain_torch_histogram(trained):
    h = gd.load(trained.run.log_dir).gradient_histograms()
    assert h.steps.tolist() == list(range(0, STEPS, DETAIL))  # the detail steps only
    assert np.array_equal(h.edges, EDGES)
    names = gd.load(trained.run.log_dir).layers
    for i, step in enumerate(h.steps):
        for j, name in enumerate(names):
            if name not in trained.layers:  # Tanh, ReLU: no parameters, no histogram
                assert np.isnan(h.counts[i, j]).all() and np.isnan(h.zeros[i, j])
                continue
            counts, zeros, nonfinite = trained.expected[step][name]
            assert np.array_equal(h.counts[i, j], counts), (step, name)
            assert (h.zeros[i, j], h.nonfinite[i, j]) == (zeros, nonfinite)
    side = gd.load(trained.run.log_dir).gradient_histograms("side")
    assert side.counts.shape == (len(h.steps), len(EDGES) - 1)
    assert side.nonfinite.tolist() == [3.0] * len(h.steps)  # inf, -inf, NaN: in no bin
    assert side.zeros.tolist() == [24.0 + 4 - 3] * len(h.steps)  # the rest of its weight and its bias
    assert side.counts.sum() == 0
    first = gd.load(trained.run.log_dir).gradient_histograms("body.0")
    assert (first.zeros >= 32).all()  # the zeroed input column


def test_only_detail_steps_store_histograms(trained):
    import sqlite3

    db = sqlite3.connect(trained.run.log_dir / "run.db")
    steps = [s for (s,) in db.execute("SELECT step FROM series WHERE entity = 'hist' ORDER BY step")]
    assert steps == list(range(0, STEPS, DETAIL))
    assert len(gd.load(trained.run.log_dir).steps) == STEPS


def test_the_probe_counts_zeros_nonfinite_and_out_of_range_entries_apart():
    special = torch.tensor([0.0, -0.0, 1e-45, 3e-3, -2e5, 1e38, math.inf, -math.inf, math.nan])  # float32
    tiny64 = torch.tensor([1e-300, 5e-7], dtype=torch.float64)
    half = torch.tensor([0.25, 0.0], dtype=torch.bfloat16)
    rollup = Rollup([(0, 0), (1, 0), (2, 1), (1, 1)], n_layers=3, device="cpu")  # param 1 shared by layers 0, 1
    hist = gradient_histograms([special, tiny64, half], rollup).numpy()
    assert np.isnan(hist[2]).all()  # a layer without parameters
    finite = {0: [1e-45, 3e-3, 2e5, 1e38, 1e-300, 5e-7], 1: [0.25, 1e-300, 5e-7]}
    for layer, values in finite.items():
        expected = np.histogram(np.clip(np.log10(values), -40, 10), EDGES)[0]
        assert np.array_equal(hist[layer, 2:], expected)
    assert hist[0, :2].tolist() == [2, 3] and hist[1, :2].tolist() == [1, 0]
    assert hist[0, 2] == 2 and hist[0, -1] == 1  # 1e-45 and 1e-300 in the first bin, 1e38 in the last


def test_a_large_gradient_is_estimated_from_its_sample_within_the_sampling_error():
    """A 600 x 1000 gradient (over HIST_SAMPLE entries) whose scale depends on its column (10^-(j mod 7), so a stride
    that repeated a few columns would miss decades), with exact zeros and a few non-finite entries, next to a small
    bias counted whole: the layer's columns against plain torch's exact histogram of all entries. Each estimate
    must be within 5 binomial standard deviations of the exact count, and the layer's total is the exact numel."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(600, 1000, generator=gen) * 10.0 ** -(torch.arange(1000) % 7).float()
    weight[torch.rand(600, 1000, generator=gen) < 0.1] = 0.0
    weight[3, 5], weight[400, 17] = math.inf, math.nan
    bias = torch.randn(1000, generator=gen) * 1e-9
    got = gradient_histograms([weight, bias], Rollup([(0, 0), (1, 0)], n_layers=1, device="cpu"))[0].numpy()
    counts, zeros, nonfinite = replay([weight, bias])
    exact = np.concatenate([[zeros, nonfinite], counts])
    assert got.sum() == pytest.approx(weight.numel() + bias.numel())
    fraction = HIST_SAMPLE / weight.numel()  # at least the share of the weight's entries counted
    sigma = np.sqrt(exact / fraction)  # binomial (Poisson) error of a count scaled up by 1 / fraction
    assert (np.abs(got - exact) <= 5 * sigma + 1).all(), np.abs(got - exact).max()
    assert (exact > 0).sum() > 8 and ((got > 0) == (exact > 0))[2:][exact[2:] > 1000].all()  # every large bin seen
    small = gradient_histograms([bias], Rollup([(0, 0)], n_layers=1, device="cpu"))[0].numpy()
    assert np.array_equal(small, np.concatenate([[0, 0], replay([bias])[0]]))  # up to HIST_SAMPLE: exact


@pytest.mark.parametrize("dtype, ints", [(torch.float32, torch.int32), (torch.float64, torch.int64)])
def test_every_edge_and_its_neighbours_land_where_bucketize_puts_them(dtype, ints):
    """The table lookup against plain `torch.bucketize` of |x|'s bit pattern against the edges' patterns, on each edge
    ±2 patterns (subnormal edges included), a million random patterns, zeros, infinities and NaNs, of both signs."""
    inner = torch.tensor(10.0 ** EDGES[1:-1], dtype=dtype).view(ints)
    edges = torch.cat([torch.ones(1, dtype=ints), inner, torch.tensor([math.inf], dtype=dtype).view(ints)])
    top = torch.iinfo(ints).max
    near = (edges.long()[:, None] + torch.arange(-2, 3)).reshape(-1)
    random = torch.randint(0, top, (1 << 20,), generator=torch.Generator().manual_seed(0), dtype=torch.int64)
    patterns = torch.cat([near[(near >= 0) & (near <= top)], random, torch.tensor([0, top])]).to(ints)
    for sign in (0, torch.iinfo(ints).min):
        values = (patterns | sign).view(dtype)
        column = torch.bucketize(values.view(ints) & top, edges, right=True)  # 0 zero, 1..100 bins, 101 inf/NaN
        want = torch.bincount(column, minlength=102).double()
        want = torch.cat([want[:1], want[-1:], want[1:-1]])  # our columns: zeros, non-finite, then the bins
        assert torch.equal(_histogram(values), want)


@pytest.mark.parametrize("fast", [True, False], ids=["cpu bincount", "accelerator histc"])
def test_both_tallies_count_every_column_exactly(fast):
    """The two ways of counting columns (the CPU's and the accelerators', run here on the CPU) against a count in
    plain Python, with empty columns, the last column and one column holding most entries."""
    columns = torch.cat([torch.full((5000,), 37), torch.arange(102).repeat(3), torch.tensor([101, 0, 0])])
    index = columns[torch.randperm(len(columns), generator=torch.Generator().manual_seed(0))].to(torch.uint8)
    want = torch.zeros(102, dtype=torch.float64)
    for column in index.tolist():
        want[column] += 1
    got = _tally(index, fast=fast)
    assert got.dtype == torch.float64 and torch.equal(got, want)


def test_a_record_without_histograms_reads_as_empty(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt, log_dir=tmp_path / "r", detail_every=0) as run:
        for _ in range(3):
            opt.zero_grad(); model(torch.randn(4, 3)).sum().backward(); opt.step(); run.step()
    h = gd.load(tmp_path / "r").gradient_histograms()
    assert h.steps.size == 0 and h.counts.shape == (0, 1, 100) and np.array_equal(h.edges, EDGES)
    assert "No gradient histograms recorded" in render(gd.load(tmp_path / "r"))


def test_html_ridge_draws_the_recorded_histograms_at_sampled_steps(trained):
    page = render(gd.load(trained.run.log_dir))
    polygons = re.findall(r'<polygon class="ridge" data-layer="([^"]*)" data-series="step (\d+)" '
                          r'data-count="(\d+)" points="([^"]+)"', page)
    detail = list(range(0, STEPS, DETAIL))
    assert {int(s) for _, s, _, _ in polygons} == set(detail)  # three detail steps: all sampled
    assert {name for name, _, _, _ in polygons} == {n for n in trained.layers if n != "side"}  # side: no binned entry
    heights = {}
    for name, step, count, points in polygons:
        counts = trained.expected[int(step)][name][0]
        assert int(count) == counts.sum()
        ys = np.array([float(p.split(",")[1]) for p in points.split()])
        heights[name, int(step)] = ys[0] - ys[1:-1]  # bar heights above the row's baseline
    for name in {n for n, _ in heights}:
        tallest = max(trained.expected[s][name][0].max() for s in detail)
        drawn = [heights[name, s] for s in detail]
        scale = max(d.max() for d in drawn)
        # the drawn window of bins sits at one offset in the full histogram, and holds every filled bin
        offsets = [o for o in range(len(EDGES) - len(drawn[0])) if all(
            np.allclose(d / scale, trained.expected[s][name][0][o : o + len(d)] / tallest, atol=1e-3)
            and trained.expected[s][name][0].sum() == trained.expected[s][name][0][o : o + len(d)].sum()
            for d, s in zip(drawn, detail))]
        assert offsets, name


def test_tensorboard_histograms_read_back_as_recorded(trained, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = gd.to_tensorboard(gd.load(trained.run.log_dir), tmp_path / "tb")
    events = EventAccumulator(str(logdir), size_guidance={"histograms": 0})
    events.Reload()
    assert "grad_log10_hist/side" not in events.Tags()["histograms"]  # nothing in any bin
    for name in trained.layers:
        if name == "side":
            continue
        written = events.Histograms(f"grad_log10_hist/{name}")
        assert [h.step for h in written] == list(range(0, STEPS, DETAIL))
        for h in written:
            counts = trained.expected[h.step][name][0]
            filled = np.flatnonzero(counts)
            window = slice(filled[0], filled[-1] + 1)
            value = h.histogram_value
            assert list(value.bucket) == counts[window].tolist()
            assert value.bucket_limit == pytest.approx(EDGES[1:][window].tolist())
            assert value.num == counts.sum()
            assert (value.min, value.max) == pytest.approx((EDGES[filled[0]], EDGES[filled[-1] + 1]))


@pytest.mark.parametrize("fast", [True, False], ids=["cpu bincount", "accelerator histc"])
@pytest.mark.parametrize("batch_entries", [1, 700, 1 << 20])
def test_binning_the_parameters_together_counts_each_as_binning_it_alone(monkeypatch, batch_entries, fast):
    """Parameters of both float dtypes, one sampled (over HIST_SAMPLE entries) and one without a gradient, binned in
    batches of every size (one parameter each, a few, all), tallied the CPU's way and the accelerators' way: each
    parameter's row equals its own `_histogram` (scaled by numel / sample size when sampled), and each layer is the
    sum of its parameters' rows."""
    import gradient_doctor.probe.histograms as histograms

    mode = {"fast": fast}
    tally = histograms._tally
    monkeypatch.setattr(histograms, "_tally", lambda index, **kw: tally(index, **kw, fast=mode["fast"]))
    monkeypatch.setattr(histograms, "BATCH_ENTRIES", batch_entries)
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(300, generator=gen) * 1e-3, torch.randn(20, 30, generator=gen, dtype=torch.float64),
             None, torch.randn(HIST_SAMPLE + 5, generator=gen), torch.tensor([0.0, math.inf, 1e-30, -2.0])]
    rollup = Rollup([(0, 0), (1, 0), (2, 1), (3, 2), (4, 3)], n_layers=4, device="cpu")
    hist = gradient_histograms(grads, rollup)  # the batches tallied as parametrised
    mode["fast"] = True  # each parameter alone by bincount
    alone = [_histogram(grads[0]), _histogram(grads[1].reshape(-1)), None,
             _histogram(grads[3][::2]).mul_((HIST_SAMPLE + 5) / grads[3][::2].numel()), _histogram(grads[4])]
    assert torch.equal(hist[0], alone[0] + alone[1]) and torch.isnan(hist[1]).all()
    assert torch.equal(hist[2], alone[3]) and torch.equal(hist[3], alone[4])
    assert hist[3, :2].tolist() == [1.0, 1.0] and hist[2].sum().item() == pytest.approx(HIST_SAMPLE + 5)
