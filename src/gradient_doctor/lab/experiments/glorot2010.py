"""Glorot & Bengio 2010: per-layer activations and back-propagated gradients of deep sigmoid/tanh/softsign MLPs,
standard vs normalised init, at init and over training; the early saturation of the top sigmoid layer.

    >>> result = run_experiment("glorot2010", quick=True, out=Path("lab-out"))
    >>> [c.verdict for c in result.claims]

The paper: 4-5 hidden layers of 1,000 units on Shapeset/MNIST/CIFAR-10, SGD with mini-batches of 10, zero biases;
"standard" init W ~ U(-1/sqrt(n), 1/sqrt(n)) (n = fan-in), "normalised" init U(±sqrt(6/(n_in + n_out))).
Here: 4 hidden layers on MNIST-1D, narrower (256 full, 128 quick) and fewer steps, so that the whole grid of
3 activations × 2 inits trains in minutes on two CPU cores; the same seed gives every configuration the same
data order. Back-propagated gradient = the per-example gradient of the cross-entropy with respect to a hidden
layer's pre-activations (the paper's Fig. 7); weight gradient = the gradient of the mean loss on the monitoring
batch (test examples). Saturated = within 1 % of the output range from a bound (the probe's definition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import gradient_doctor as gd

from ...errors import InvalidValue
from ..datasets import Split, mnist1d
from ..experiment import Claim, Context, Result
from ..tasks import plain_mlp
from ..train import accuracy, single_thread, train_curve

NAME = "glorot2010"
SUMMARY = ("Glorot & Bengio 2010: activations, saturation and back-propagated gradients per layer, standard vs "
           "normalised init")

ACTIVATIONS: dict[str, tuple[type[nn.Module], tuple[float, float]]] = {
    "sigmoid": (nn.Sigmoid, (0.0, 1.0)), "tanh": (nn.Tanh, (-1.0, 1.0)), "softsign": (nn.Softsign, (-1.0, 1.0)),
}
INITS = ("standard", "normalised")
SATURATION_EPS = 0.01  # as gradient_doctor.probe.layers.SATURATION_EPS: 1 % of the output range from a bound
FLATTER = 3.0  # normalised init counts as flatter when its layer-1/top ratio is this many times the standard one
FLAT_PER_LAYER = 0.7  # ... and as about flat when the variance shrinks by no more than this factor per layer
TOP_LOW = 0.1  # a sigmoid layer whose mean output is below this is "pinned near 0" (sigma' < 0.09 there)


@dataclass(frozen=True)
class Budget:
    hidden: int  # hidden layers
    width: int
    steps: int
    batch: int
    lr: float  # plain SGD, as the paper
    every: int  # steps between measurements on the monitoring batch
    monitor: int  # examples in the monitoring batch (from the test part)


QUICK = Budget(hidden=4, width=128, steps=900, batch=10, lr=0.1, every=50, monitor=300)
FULL = Budget(hidden=4, width=256, steps=20000, batch=10, lr=0.1, every=400, monitor=1000)


def build(activation: str, init: str, inputs: int, budget: Budget, seed: int) -> nn.Sequential:
    """The MLP (`budget.hidden` hidden layers) with the paper's standard or normalised init and zero biases.

        >>> build("sigmoid", "standard", 40, FULL, seed=0)   # Linear(40, 256), Sigmoid, ..., Linear(256, 10)
    """
    if init not in INITS:
        raise InvalidValue(f"init must be one of {INITS}; got {init!r}")
    module = ACTIVATIONS[activation][0]
    torch.manual_seed(seed)
    model = plain_mlp(budget.hidden + 1, budget.width, module, inputs=inputs)
    if init == "normalised":
        return gd.remedies.xavier_init(model)  # U(±sqrt(6 / (fan_in + fan_out))), zero biases
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound)
                layer.bias.zero_()
    return model


def layer_stats(model: nn.Sequential, x: Tensor, y: Tensor, bounds: tuple[float, float]) -> dict[str, Tensor]:
    """Per hidden layer: activation mean, std, saturated fraction; variance of the per-example back-propagated
    gradient w.r.t. the pre-activations; variance of the weight gradient of the mean loss (entries of W).

        >>> layer_stats(model, x, y, (0.0, 1.0))["delta_var"]     # tensor of one value per hidden layer
    """
    pre, post, h = [], [], x
    for module in model:
        h = module(h)
        if isinstance(module, nn.Linear):
            pre.append(h)
        else:
            post.append(h)
    pre = pre[: len(post)]  # the output layer's logits are not a hidden layer
    loss = nn.functional.cross_entropy(h, y, reduction="sum")  # per-example gradients: no 1/batch factor
    linears = [m for m in model if isinstance(m, nn.Linear)][: len(post)]
    grads = torch.autograd.grad(loss, [*pre, *(m.weight for m in linears)])
    deltas, weight_grads = grads[: len(pre)], grads[len(pre):]
    low, high = bounds
    half = (high - low) / 2
    stack = lambda values: torch.stack([v.detach().double() for v in values])  # noqa: E731
    return {
        "act_mean": stack(a.mean() for a in post),
        "act_std": stack(a.std() for a in post),
        "saturated_frac": stack(((a - low - half).abs() >= half - SATURATION_EPS * (high - low)).float().mean()
                                for a in post),
        "delta_var": stack(d.var() for d in deltas),
        "weight_grad_var": stack((g / len(y)).var() for g in weight_grads),
    }


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    data = mnist1d()
    x_mon, y_mon = data.x_test[: budget.monitor], data.y_test[: budget.monitor]
    with single_thread():
        traces = {(activation, init): _trace(activation, init, bounds, data, x_mon, y_mon, budget, ctx)
                  for activation, (_, bounds) in ACTIVATIONS.items() for init in INITS}
    row_steps = (0, _early(budget), budget.steps)
    rows = [{"activation": a, "init": i, "layer": layer + 1, "step": step,
             **{k: float(v[trace["steps"].index(step)][layer]) for k, v in trace["stats"].items()},
             "test_acc": trace["test_acc"]}
            for (a, i), trace in traces.items() for step in row_steps for layer in range(budget.hidden)]
    _plot(ctx, traces, budget)
    return Result(rows=rows, claims=_claims(traces, budget), notes=_notes(budget))


def _trace(activation: str, init: str, bounds: tuple[float, float], data: Split, x_mon: Tensor, y_mon: Tensor,
           budget: Budget, ctx: Context) -> dict:
    """Train one configuration; its statistics (steps × layers) at every `budget.every` steps and test accuracy."""
    model = build(activation, init, data.x_train.shape[1], budget, ctx.seed)
    steps: list[int] = []
    stats: dict[str, list[Tensor]] = {}

    def monitor(step: int) -> None:
        steps.append(step)
        for key, value in layer_stats(model, x_mon, y_mon, bounds).items():
            stats.setdefault(key, []).append(value)

    optimizer = torch.optim.SGD(model.parameters(), lr=budget.lr)
    losses = train_curve(model, data, steps=budget.steps, batch=budget.batch, optimizer=optimizer, seed=ctx.seed,
                         progress=ctx.progress, description=f"{activation}, {init} init", every=budget.every,
                         monitor=monitor)
    ctx.finished(f"{activation}, {init} init")
    return {"steps": steps, "stats": {k: torch.stack(v) for k, v in stats.items()},
            "test_acc": accuracy(model, data.x_test, data.y_test), "final_loss": losses[-budget.every:].mean().item()}


def _early(budget: Budget) -> int:
    """The measured step nearest below 10 % of the budget (at least the first measurement after step 0)."""
    return budget.every * max(1, budget.steps // (10 * budget.every))


def _claims(traces: dict, budget: Budget) -> list[Claim]:
    return [_top_sigmoid_claim(traces["sigmoid", "standard"], budget), _softsign_claim(traces),
            _gradient_claim(traces), _accuracy_claim(traces)]


def _top_sigmoid_claim(trace: dict, budget: Budget) -> Claim:
    means = trace["stats"]["act_mean"]  # steps × layers
    steps = trace["steps"]
    top, below = means[:, -1], means[:, :-1]
    low = int(top.argmin())
    pinned = [s for s, m in zip(steps, top) if m < TOP_LOW]
    early = _early(budget)
    dropped = bool(top[low] < 0.5 * top[0])
    lower_ok = bool(((below - 0.5).abs() < 0.3).all())
    recovered = bool(pinned) and top[-1] >= TOP_LOW
    span = (f"below {TOP_LOW} from step {pinned[0]} to {pinned[-1]}"
            + (f", recovering to {top[-1]:.3f} by step {steps[-1]}" if recovered else " (still at the end)")
            if pinned else f"never below {TOP_LOW} within {budget.steps} steps")
    measured = (f"sigmoid, standard init: top hidden layer mean output {top[0]:.3f} at init → "
                f"{top[steps.index(early)]:.3f} at step {early} → min {top[low]:.4f} at step {steps[low]}; {span}; "
                f"lower layers' means stay in [{below.min():.2f}, {below.max():.2f}]; test accuracy after "
                f"{budget.steps} steps {trace['test_acc']:.3f}")
    if dropped and lower_ok and pinned:
        verdict = "holds"
    elif dropped and lower_ok:
        verdict = "holds with conditions"  # the drop, but not (yet) to near 0 in this budget
    else:
        verdict = "does not hold"
    return Claim("With sigmoid and standard init the top hidden layer saturates at 0 early in training (and only "
                 "slowly desaturates), while the lower layers do not", measured, verdict)


def _softsign_claim(traces: dict) -> Claim:
    """The paper's Figs. 3-4: tanh layers saturate one after another during training; softsign much less."""
    end = {a: max(float(traces[a, i]["stats"]["saturated_frac"][-1].max()) for i in INITS)
           for a in ("tanh", "softsign")}
    first = {i: float(traces["tanh", i]["stats"]["saturated_frac"][-1][0]) for i in INITS}
    measured = (f"largest saturated fraction of any layer after training: tanh {end['tanh']:.3f}, softsign "
                f"{end['softsign']:.3f}; tanh layer 1: standard {first['standard']:.3f}, normalised "
                f"{first['normalised']:.3f}")
    verdict = "holds" if end["softsign"] < 0.5 * end["tanh"] and end["tanh"] > 0.01 else "does not hold"
    return Claim("Softsign saturates less than tanh during training", measured, verdict)


def _gradient_claim(traces: dict) -> Claim:
    """Back-propagated gradient variance at init, layer 1 over the top hidden layer (1 = flat), and the factor
    per layer it implies; the paper's derivation (linear regime, f'(0) = 1) gives (n Var W)^-1 per layer down:
    3 for standard init, 1 for normalised init of square layers."""
    ratio = {k: float(t["stats"]["delta_var"][0][0] / t["stats"]["delta_var"][0][-1]) for k, t in traces.items()}
    gaps = len(next(iter(traces.values()))["stats"]["delta_var"][0]) - 1
    per_layer = {k: r ** (1 / gaps) for k, r in ratio.items()}
    flatter = [a for a in ACTIVATIONS if ratio[a, "normalised"] > FLATTER * ratio[a, "standard"]]
    flat = [a for a in ACTIVATIONS if per_layer[a, "normalised"] >= FLAT_PER_LAYER]
    parts = "; ".join(f"{a}: standard {ratio[a, 'standard']:.2g} (×{per_layer[a, 'standard']:.2f} per layer), "
                      f"normalised {ratio[a, 'normalised']:.2g} (×{per_layer[a, 'normalised']:.2f} per layer)"
                      for a in ACTIVATIONS)
    if len(flatter) == len(flat) == len(ACTIVATIONS):
        verdict = "holds"
    elif "tanh" in flatter:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    measured = (f"Var(back-propagated gradient) layer 1 / top hidden layer at init — {parts}. Normalised is "
                f"> {FLATTER:g}× flatter for {', '.join(flatter) or 'none'}; about flat (≥ ×{FLAT_PER_LAYER} per "
                f"layer) for {', '.join(flat) or 'none'}. Off the linear regime f'² < 1 shrinks it further: sigmoid's f'(0) is 1/4, "
                "softsign's derivative falls off linearly in |x|.")
    return Claim("Normalised init keeps the back-propagated gradient variance about constant across layers; with "
                 "standard init it shrinks towards the input", measured, verdict)


def _accuracy_claim(traces: dict) -> Claim:
    acc = {k: t["test_acc"] for k, t in traces.items()}
    better = [a for a in ACTIVATIONS if acc[a, "normalised"] > acc[a, "standard"]]
    measured = "test accuracy after the budget — " + "; ".join(
        f"{a}: standard {acc[a, 'standard']:.3f}, normalised {acc[a, 'normalised']:.3f}" for a in ACTIVATIONS)
    verdict = {3: "holds", 0: "does not hold"}.get(len(better), "holds with conditions")
    return Claim("Normalised init trains to a better test error than standard init (same budget)", measured, verdict)


def _notes(budget: Budget) -> list[str]:
    return [
        f"Budget per configuration: {budget.steps} plain-SGD steps, batch {budget.batch}, lr {budget.lr}; "
        f"{budget.hidden} hidden layers of width {budget.width}; MNIST-1D (4,000 train / 1,000 test, generated "
        "locally); "
        f"statistics every {budget.every} steps on {budget.monitor} test examples.",
        "Deviations from the paper: MNIST-1D instead of Shapeset-3x2/MNIST/CIFAR-10, width 256 instead of 1,000, "
        "one learning rate for all configurations (the paper tuned it per configuration), tens of thousands of "
        "updates instead of millions: a CPU budget. The paper's top layer desaturates only after far more "
        "updates than this budget, so whether it does here is out of reach. Rows show step 0, about 10 % of "
        "the budget and its end.",
        "Layer 1's fan-in is 40 (MNIST-1D's signal length), the others' equal the width, so normalised init gives "
        "layer 1 a smaller weight variance than the hidden-to-hidden layers.",
    ]


def _plot(ctx: Context, traces: dict, budget: Budget) -> None:
    plotting = ctx.pyplot("glorot2010")
    if plotting is None:
        return
    plt, path = plotting

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    trace = traces["sigmoid", "standard"]
    mean, std = trace["stats"]["act_mean"], trace["stats"]["act_std"]
    for layer in range(budget.hidden):
        axes[0].plot(trace["steps"], mean[:, layer], color=f"C{layer}", label=f"layer {layer + 1}")
        axes[0].fill_between(trace["steps"], mean[:, layer] - std[:, layer], mean[:, layer] + std[:, layer],
                             color=f"C{layer}", alpha=0.2)
    axes[0].set(title="sigmoid, standard init: activation mean ± std", xlabel="step", ylabel="sigmoid output")
    for activation, style in (("tanh", "-"), ("softsign", "--")):
        t = traces[activation, "standard"]
        for layer in range(budget.hidden):
            axes[1].plot(t["steps"], t["stats"]["saturated_frac"][:, layer], style, color=f"C{layer}",
                         label=f"{activation} layer {layer + 1}")
    axes[1].set(title="standard init: saturated fraction (|y| ≥ 0.98)", xlabel="step", ylabel="fraction")
    layers = range(1, budget.hidden + 1)
    for k, (activation, init) in enumerate(traces):
        axes[2].semilogy(layers, traces[activation, init]["stats"]["delta_var"][0],
                         "-o" if init == "standard" else "--s", color=f"C{k // 2}", label=f"{activation}, {init}")
    axes[2].set(title="back-propagated gradient variance at init", xlabel="hidden layer", ylabel="Var(dL/dz)",
                xticks=list(layers))
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
