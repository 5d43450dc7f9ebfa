"""gd.report: the HTML report's structure, its numbers against a plain-torch replay of the training, escaping,
determinism; checkup and treatment pages; the `report` command; PNG plots; the live panel."""

from __future__ import annotations

import html
import io
import math
import re
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console
from torch import nn

import gradient_doctor as gd
from gradient_doctor.cli import main
from gradient_doctor.report.html import render
from gradient_doctor.report.live import LivePanel

EVIL = "<script>alert(1)</script>"
STEPS, DETAIL = 40, 10


def evil_model() -> nn.Sequential:
    """Linear/Tanh/Linear/ReLU/Linear, then a Linear named like a script tag."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    model.add_module(EVIL, nn.Linear(4, 1))
    return model


def own_norm(module: nn.Module, what: str) -> float:
    """L2 norm over a module's own parameters jointly ("grad" or "weight"), in float64."""
    tensors = [p.grad if what == "grad" else p for p in module.parameters(recurse=False)]
    return math.sqrt(sum(t.detach().double().pow(2).sum().item() for t in tensors if t is not None))


@dataclass
class Trained:
    run: gd.Run
    grad: dict[int, dict[str, float]]  # step -> layer -> ‖g‖, measured in plain torch
    ratio: dict[int, dict[str, float]]  # step -> layer -> ‖Δw‖/‖w‖
    loss: dict[int, float]
    weighted: list[str]  # layers with parameters, forward order


def train(tmp_path, **watch_kwargs) -> Trained:
    model = evil_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 8, generator=g), torch.randn(64, 1, generator=g)
    weighted = {name: m for name, m in model.named_modules() if name and list(m.parameters(recurse=False))}
    grad, ratio, losses = {}, {}, {}
    with gd.watch(model, opt, log_dir=tmp_path / "run", detail_every=DETAIL, update_every=DETAIL,
                  activation_every=DETAIL, **watch_kwargs) as run:
        for step in range(STEPS):
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            grad[step] = {name: own_norm(m, "grad") for name, m in weighted.items()}
            before = {name: [p.detach().clone() for p in m.parameters(recurse=False)] for name, m in weighted.items()}
            opt.step()
            run.step(loss=loss)
            losses[step] = loss.item()
            if step % DETAIL == 0:
                ratio[step] = {
                    name: math.sqrt(sum((p.detach().double() - b.double()).pow(2).sum().item()
                                        for p, b in zip(m.parameters(recurse=False), before[name])))
                    / own_norm(m, "weight")
                    for name, m in weighted.items()
                }
    return Trained(run, grad, ratio, losses, list(weighted))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    return train(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(trained) -> str:
    return render(trained.run)


def marks(page: str, tag: str, cls: str) -> list[dict[str, str]]:
    """The data-* attributes of every `<tag class="cls" ...>` element, unescaped."""
    out = []
    for match in re.finditer(rf'<{tag} class="{cls}"([^>]*)>', page):
        out.append({k: html.unescape(v) for k, v in re.findall(r'data-([a-z]+)="([^"]*)"', match.group(1))})
    return out


def chart(page: str, ident: str) -> str:
    """The markup of the figure with data-chart=`ident`."""
    match = re.search(rf'<figure data-chart="{re.escape(ident)}">.*?</figure>', page, re.S)
    assert match, f"no figure {ident!r}"
    return match.group(0)


def test_every_section_and_chart_is_there(page):
    for ident in ("findings", "gradient-flow", "heatmaps", "activations", "loss", "distributions"):
        assert f'<section id="{ident}">' in page
    for ident in ("grad_flow", "grad_norm_heatmap", "update_ratio_heatmap", "saturation", "dead", "loss", "ridge"):
        assert "<svg" in chart(page, ident)
    assert 'class="verdict' in page


def test_gradient_flow_bars_match_plain_torch_at_the_first_middle_and_last_step(trained, page):
    bars = marks(chart(page, "grad_flow"), "rect", "bar")
    series = sorted({b["series"] for b in bars}, key=lambda s: int(s.split()[1]))
    assert series[0] == "step 0" and series[-1] == f"step {STEPS - 1}" and len(series) == 3
    assert len(bars) == 3 * len(trained.weighted)
    for bar in bars:
        expected = trained.grad[int(bar["series"].split()[1])][bar["layer"]]
        assert float(bar["value"]) == pytest.approx(expected, rel=2e-5)
    # first → last: rows in forward order
    assert list(dict.fromkeys(b["layer"] for b in bars)) == trained.weighted


def test_heatmap_cells_match_plain_torch(trained, page):
    cells = marks(chart(page, "grad_norm_heatmap"), "rect", "cell")
    assert len(cells) == STEPS * len(trained.weighted)  # 40 steps ≤ 120 columns: one column per step
    for cell in cells:
        assert float(cell["value"]) == pytest.approx(trained.grad[int(cell["column"])][cell["layer"]], rel=2e-5)
    ratio = marks(chart(page, "update_ratio_heatmap"), "rect", "cell")
    recorded = sorted(trained.ratio)  # NaN steps are skipped: one column per update step
    assert len(ratio) == len(recorded) * len(trained.weighted)
    for cell in ratio:
        expected = trained.ratio[recorded[int(cell["column"])]][cell["layer"]]
        assert float(cell["value"]) == pytest.approx(expected, rel=1e-4)


def test_loss_numbers_match_the_training_loop(trained, page):
    rows = re.findall(r"<tr><td>(first|lowest|last)</td><td>(\d+)</td><td>([^<]+)</td></tr>", page)
    found = {name: (int(step), float(value)) for name, step, value in rows}
    lowest = min(trained.loss, key=trained.loss.get)
    assert found["first"] == (0, pytest.approx(trained.loss[0], rel=1e-5))
    assert found["last"] == (STEPS - 1, pytest.approx(trained.loss[STEPS - 1], rel=1e-5))
    assert found["lowest"] == (lowest, pytest.approx(trained.loss[lowest], rel=1e-5))


def test_activation_lines_skip_unmeasured_steps(trained, page):
    # Tanh is saturating, ReLU a rectifier: one line each, with a point per activation step only
    for ident, layer in (("saturation", "1"), ("dead", "3")):
        (points,) = re.findall(r'<polyline class="line" data-series="%s" points="([^"]+)"' % layer, chart(page, ident))
        assert len(points.split()) == STEPS // DETAIL


def test_names_are_escaped_and_the_page_runs_no_script(page):
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_the_same_record_gives_the_same_bytes(trained, page, tmp_path):
    assert render(trained.run) == page
    assert render(gd.load(trained.run.log_dir)) == page
    path = gd.report(str(trained.run.log_dir), tmp_path / "r.html")
    assert path.read_text(encoding="utf-8") == page


def test_report_command_writes_the_page(trained, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(trained.run.log_dir), "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(trained.run)


def test_report_rejects_other_objects():
    with pytest.raises(TypeError, match="expects a Run .* got int"):
        gd.report(3, "x.html")


# -- checkup and treatment ---------------------------------------------------------------------
def chain_deltas(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖∂L/∂(output of layer k)‖ for each layer of a plain chain, with an MSE loss, in plain torch."""
    outputs, h = [], x
    for layer in model:
        h = layer(h)
        h.retain_grad()
        outputs.append(h)
    nn.functional.mse_loss(h, y, reduction="sum").backward()
    return [o.grad.double().norm().item() for o in outputs]


def test_checkup_waterfall_steps_are_the_layers_log_gains(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(5) for m in (nn.Linear(12, 12), nn.Sigmoid())], nn.Linear(12, 1))
    x, y = torch.randn(32, 12), torch.randn(32, 1)
    loss_fn = lambda out, target: nn.functional.mse_loss(out, target, reduction="sum")  # noqa: E731
    diag = gd.checkup(model, x, targets=y, loss_fn=loss_fn)
    page = render(diag)
    deltas = chain_deltas(model, x, y)
    steps = marks(chart(page, "budget"), "rect", "step") + marks(chart(page, "budget"), "text", "step")
    layer_steps = [s for s in steps if s["kind"] == "layer"]
    assert [s["layer"] for s in layer_steps] == [str(k) for k in range(1, len(model))]
    for k, s in enumerate(layer_steps, start=1):  # gain of layer k: ‖δ at its input‖ / ‖δ at its output‖
        assert float(s["value"]) == pytest.approx(math.log10(deltas[k - 1] / deltas[k]), abs=1e-4)
    (total,) = [s for s in steps if s["kind"] == "total"]
    assert float(total["value"]) == pytest.approx(math.log10(deltas[0] / deltas[-1]), abs=1e-4)
    (remainder,) = [s for s in steps if s["kind"] == "remainder"]
    assert float(remainder["value"]) == pytest.approx(0.0, abs=1e-4)  # a plain chain: the layers account for all
    assert '<section id="time">' not in page


class LastStep(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.RNN(3, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_recurrent_checkup_shows_gradient_through_time_with_the_memory_horizon():
    torch.manual_seed(0)
    diag = gd.checkup(LastStep(), torch.randn(4, 40, 3))
    (t,) = diag.measurement.recurrent
    page = render(diag)
    figure = chart(page, "time_rnn")
    (points,) = re.findall(r'<polyline class="line" data-series="[^"]*" points="([^"]+)"', figure)
    assert len(points.split()) == int((np.asarray(t.relative) > 0).sum())
    assert f"memory horizon: {t.horizon} steps" in figure and 'class="marker"' in figure


def test_treatment_page_shows_the_diff_and_both_budgets():
    torch.manual_seed(0)
    sick = nn.Sequential(*[m for _ in range(6) for m in (nn.Linear(10, 10), nn.Sigmoid())], nn.Linear(10, 1))
    healthy = nn.Sequential(*[m for _ in range(2) for m in (nn.Linear(10, 10), nn.ReLU())], nn.Linear(10, 1))
    x = torch.randn(16, 10)
    before, after = gd.checkup(sick, x), gd.checkup(healthy, x)
    treatment = SimpleNamespace(before=before, after=after, applied=["swap_activation:relu"],
                                rejected=[("add_residual", f"no shape-preserving run in {EVIL}")],
                                diff=["- (1): Sigmoid()", "+ (1): ReLU()", f"  ({EVIL}): Linear"])
    page = render(treatment)
    for ident in ("findings", "diff", "budget", "findings-before-after"):
        assert f'<section id="{ident}">' in page
    assert '<span class="chg">~ (1): Sigmoid() -&gt; ReLU()</span>' in page  # a replacement on one line
    assert EVIL not in page and "no shape-preserving run in &lt;script&gt;" in page
    assert "<li>swap_activation:relu</li>" in page
    for name, diag in (("before", before), ("after", after)):
        (total,) = [s for s in marks(chart(page, f"budget_{name}"), "rect", "step") if s["kind"] == "total"]
        assert float(total["value"]) == pytest.approx(math.log10(diag.measurement.budget.end_to_end), abs=1e-5)
    assert page.count('data-healthy="false"') >= 1 and before.healthy is False


# -- PNG plots ---------------------------------------------------------------------------------
def test_plot_grad_flow_bars_are_the_gradient_norms(trained, tmp_path):
    from PIL import Image

    path = tmp_path / "flow.png"
    figure = trained.run.plot("grad_flow", path)
    axes = figure.axes[0]
    shown = [int(t.get_text().split()[1]) for t in axes.get_legend().get_texts()]
    assert shown[0] == 0 and shown[-1] == STEPS - 1 and len(shown) == 3
    expected = [trained.grad[s][name] for s in shown for name in trained.weighted]
    assert [p.get_width() for p in axes.patches] == pytest.approx(expected, rel=1e-6)
    image = np.asarray(Image.open(path).convert("L"))
    assert image.shape == (500, 800)


def test_plot_heatmaps_show_the_plain_torch_numbers(trained):
    grad = trained.run.plot("heatmap").axes[0].images[0].get_array()  # layers × steps (40 ≤ 120 columns)
    expected = [[trained.grad[s][name] for s in range(STEPS)] for name in trained.weighted]
    assert np.asarray(grad) == pytest.approx(np.array(expected), rel=2e-5)
    ratio = trained.run.plot("update_ratio").axes[0].images[0].get_array()
    expected = [[trained.ratio[s][name] for s in sorted(trained.ratio)] for name in trained.weighted]
    assert np.asarray(ratio) == pytest.approx(np.array(expected), rel=1e-4)


def test_plot_loss_and_activation_lines_are_the_recorded_values(trained):
    (loss,) = trained.run.plot("loss").axes[0].lines
    assert list(loss.get_xdata()) == list(range(STEPS))
    assert list(loss.get_ydata()) == pytest.approx([trained.loss[s] for s in range(STEPS)], rel=1e-6)
    (saturation,) = trained.run.plot("saturation").axes[0].lines  # the one Tanh, at the activation steps
    assert list(saturation.get_xdata()) == list(range(0, STEPS, DETAIL))
    assert all(0 <= v <= 1 for v in saturation.get_ydata())


def test_plot_rejects_an_unknown_kind(trained):
    with pytest.raises(ValueError, match="unknown plot kind 'histogram'; expected one of grad_flow"):
        trained.run.plot("histogram")


# -- live panel --------------------------------------------------------------------------------
def test_live_panel_redraws_only_when_its_clock_allows_and_forces_no_other_flush(tmp_path):
    now = [0.0]
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    panel = LivePanel(console, refresh_per_second=2, clock=lambda: now[0])
    model = evil_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(8, 8)

    def steps(n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()

    with gd.watch(model, opt, log_dir=tmp_path / "live", flush_every=1000) as run:
        run.add_listener(panel)
        steps(10)  # the panel is due at once: step 0 is flushed as step 1 begins, then the clock stands still
        assert panel.redraws == 1 and len(gd.load(tmp_path / "live").steps) == 1
        steps(1)
        assert panel.redraws == 1 and len(gd.load(tmp_path / "live").steps) == 1
        now[0] = 0.6  # half a second later: the next step flushes and redraws
        steps(1)
        assert panel.redraws == 2 and len(gd.load(tmp_path / "live").steps) == 11
    assert panel.redraws == 3  # and once more at close
    shown = console.file.getvalue()
    assert "gradient-doctor (live)" in shown and "‖g‖" in shown and "&lt;" not in shown


def test_watch_live_draws_the_panel(tmp_path, capsys):
    model = evil_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gd.watch(model, opt, live=True) as run:
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(8, 8)).pow(2).mean().backward()
            opt.step()
    out = capsys.readouterr().out
    assert "gradient-doctor (live)" in out and "<script>alert(1)" in out  # a terminal shows names as they are
    assert len(run.steps) == 5


# -- review fixes: scales, zero cells, rationale, markup, long runs, missing ratios, lifecycle -----------------
def test_log_bars_of_a_2x_difference_are_both_visible_with_tick_labels():
    from gradient_doctor.report import charts

    chart_svg = charts.bars(["a", "b"], {"step 0": np.array([1e-3, 2e-3])}, caption="‖g‖")
    small, large = (float(w) for w in re.findall(r'class="bar"[^>]*width="([0-9.]+)"', chart_svg))
    assert small > 0.5 * large  # a 2× gap is a third of a decade, not 1 px against 550 px
    ticks = re.findall(r">1e(-?\d+)<", chart_svg)
    assert len(ticks) >= 2
    assert 10.0 ** min(map(int, ticks)) < 1e-3 and 10.0 ** max(map(int, ticks)) >= 2e-3  # whole decades around


def test_a_zero_heatmap_cell_has_its_own_fill_and_legend_entry():
    from gradient_doctor.report import charts

    chart_svg = charts.heatmap(["a", "b"], ["step 0"], np.array([[0.0], [1e-3]]), caption="‖g‖")
    fills = dict(re.findall(r'data-value="([^"]+)"[^>]*fill="(#[0-9a-f]+)"', chart_svg))
    low = charts.colour(0.0)
    assert fills["0"] != low and fills["0"] != fills["0.001"]
    assert f'fill="{fills["0"]}"/><text' in chart_svg and ">0</text>" in chart_svg  # a swatch named 0


def test_finding_cards_show_each_remedys_rationale():
    finding = gd.Finding("dead_units", "warning", "depth", ["3"], {"dead_frac": {"3": 0.8}}, ["he_init"],
                         rationale={"he_init": "80% of layer 3's units dead <b>"})
    page_html = render(gd.Diagnosis([finding]))
    assert "80% of layer 3&#x27;s units dead &lt;b&gt;" in page_html


def test_summary_table_shows_a_layer_name_with_rich_markup_characters(tmp_path):
    model = nn.Sequential()
    model.add_module("[bold]x", nn.Linear(3, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with gd.watch(model, opt) as run:
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
    console = Console(record=True, width=200, file=io.StringIO())
    console.print(run.summary())
    assert "[bold]x" in console.export_text()


def test_long_runs_are_binned_to_medians_of_the_plain_torch_values(tmp_path):
    from gradient_doctor.report.data import RunView, binned, line

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(16, 3)
    grads, losses = [], []
    with gd.watch(model, opt, detail_every=0, update_every=0, activation_every=0, flush_every=500) as run:
        for _ in range(1100):  # > 1000 line points, > 120 heatmap columns
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            grads.append(own_norm(model[0], "grad"))
            losses.append(loss.item())
            opt.step()
            run.step(loss=loss)
    view = RunView.read(run)
    labels, grid = binned(view.steps, view.grad_norm)
    assert len(labels) == 120
    for label_text, value in zip(labels, grid[0]):
        first, last = map(int, re.findall(r"\d+", label_text))
        assert value == pytest.approx(float(np.median(grads[first : last + 1])), rel=1e-5)
    x_points, y_points = line(view.steps, view.loss)
    assert len(x_points) <= 1000 and x_points[0] == 0
    ends = list(x_points[1:]) + [1100]
    for start, end, value in zip(x_points, ends, y_points):
        assert value == pytest.approx(float(np.median(losses[start:end])), rel=1e-6)
    loss_chart = chart(render(run), "loss")
    assert len(re.search(r'points="([^"]*)"', loss_chart).group(1).split()) == len(x_points)


def test_missing_update_ratio_says_which_norm_is_missing(tmp_path):
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gd.watch(model, opt, detail_every=0, update_every=1) as run:  # ‖Δw‖ every step, ‖w‖ never
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(4, 3)).pow(2).mean().backward()
            opt.step()
    assert np.isfinite(run.history("update_norm")[:, 0]).all()
    assert "‖Δw‖ was recorded but ‖w‖ was not measured" in html.unescape(render(run))


def test_take_gradients_needs_an_optimizer():
    model = nn.Linear(2, 1)
    with gd.watch(model) as run:
        model(torch.randn(3, 2)).sum().backward()
        with pytest.raises(gd.GradientDoctorError, match="needs a run watched with an optimizer"):
            run.take_gradients()


def test_live_panel_off_a_terminal_draws_once_at_close(tmp_path):
    console = Console(file=io.StringIO(), force_terminal=False, width=120)
    panel = LivePanel(console, clock=lambda: 1e9)  # the clock would always allow a redraw
    model = evil_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with gd.watch(model, opt, flush_every=1000) as run:
        run.add_listener(panel)
        for _ in range(5):
            opt.zero_grad()
            model(torch.randn(8, 8)).pow(2).mean().backward()
            opt.step()
        assert panel.redraws == 0 and not panel.due()
    assert panel.redraws == 1 and "gradient-doctor (live)" in console.file.getvalue()


def test_listeners_close_even_when_the_last_flush_fails(tmp_path):
    closed = []

    class Recorder:
        def due(self) -> bool:
            return False

        def flushed(self, run) -> None:
            pass

        def close(self, run) -> None:
            closed.append(True)

    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = gd.watch(model, opt, log_dir=tmp_path / "run")
    run.add_listener(Recorder())
    opt.zero_grad()
    model(torch.randn(3, 2)).sum().backward()
    opt.step()

    def broken(*args):
        raise OSError("disk full")

    run._store.write_flush = broken
    with pytest.raises(OSError, match="disk full"):
        run.close()
    assert closed == [True]
