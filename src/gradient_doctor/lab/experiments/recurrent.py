"""`gradient-doctor lab recurrent`: tanh RNN vs LSTM (default, forget-gate bias 1, chrono) vs GRU vs IRNN on the
adding problem and the copy task across T, with the memory horizon from `gd.checkup` over training.

    >>> result = run_experiment("recurrent", quick=True, out=Path("lab-out"))
    >>> [(row["cell"], row["relative_loss"]) for row in result.rows]     # held-out loss / trivial baseline

Every model trains with the same budget (Adam, global-norm clipping at 1, fresh batches each step) from
`torch.manual_seed(seed)`. At each checkpoint the held-out loss is divided by `datasets.baseline` (1 = no better
than the input-blind predictor) and `gd.checkup` measures the memory horizon: how many steps back from the last
the gradient ‖∂L/∂x_t‖ stays within e^-3 of ‖∂L/∂x_T‖. A run "solves" a task when its relative loss falls below
SOLVED, and "fails" when it stays above FAILED.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count
from typing import Any

import torch

from ...diagnose import checkup
from ..experiment import Claim, Context, Result
from ..train import fit, single_thread
from ._sequences_training import SequenceTask, chunks, evaluate, sequence_model

NAME = "recurrent"
SUMMARY = "tanh RNN vs LSTM (forget-gate bias) vs GRU vs IRNN on the adding and copy tasks across T"
SOLVED, FAILED = 0.1, 0.5  # relative held-out loss: below SOLVED the dependency is learnt; above FAILED it is not


@dataclass(frozen=True)
class Budget:
    tasks: tuple[tuple[str, int], ...]  # (task, T)
    cells: tuple[str, ...]
    steps: int
    checkpoints: int  # evaluations (loss and horizon) after the start, evenly spaced
    batch: int = 64
    lr: float = 2e-2
    hidden: int = 32
    max_norm: float = 1.0
    test_size: int = 512


QUICK = Budget(tasks=(("adding", 100),), cells=("tanh", "lstm", "lstm_chrono"), steps=400, checkpoints=4,
               batch=32, hidden=16, test_size=256)
FULL = Budget(tasks=(*(("adding", t) for t in (20, 50, 100, 200)), *(("copy", t) for t in (10, 20, 50, 100))),
              cells=("tanh", "lstm", "lstm_forget", "lstm_chrono", "gru", "irnn"), steps=600, checkpoints=6)
LSTMS = ("lstm", "lstm_forget", "lstm_chrono")


def run(ctx: Context) -> Result:
    budget = QUICK if ctx.quick else FULL
    rows = []
    task_bar = ctx.progress.add_task("recurrent: task × T × cell", total=len(budget.tasks) * len(budget.cells))
    with single_thread():
        for name, steps in budget.tasks:
            task = SequenceTask(name, steps)
            for cell in budget.cells:
                rows.append(_train(task, cell, budget, ctx))
                ctx.progress.advance(task_bar)
                ctx.finished(f"{cell} on {name} T={steps}: loss/baseline {rows[-1]['relative_loss']:.3f}")
    _plot(rows, ctx)
    claims = [c for c in (_lstm_claim(rows), _forget_claim(rows), _irnn_claim(rows)) if c is not None]
    return Result(rows, claims, _notes(budget))


def _train(task: SequenceTask, cell: str, budget: Budget, ctx: Context) -> dict[str, Any]:
    torch.manual_seed(ctx.seed)
    model = sequence_model(cell, task, budget.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.lr)
    test = task.batch(budget.test_size, seed=10_000 + ctx.seed)
    probe = task.batch(64, seed=20_000 + ctx.seed)
    batches = map(task.batches(budget.batch, seed=ctx.seed), count())  # shared by the chunks: step s gets batch s
    at, losses, horizons, nonfinite = [0], [evaluate(model, test, task.loss)], [_horizon(model, probe, task)], 0
    bar = ctx.progress.add_task(f"  {cell} on {task.name} T={task.steps}", total=budget.steps)
    for steps in chunks(budget.steps, budget.checkpoints):
        nonfinite += fit(model, optimizer, batches, task.loss, steps, max_norm=budget.max_norm, check_gradients=True,
                         progress=(ctx.progress, bar)).nonfinite
        at.append(at[-1] + steps)
        losses.append(evaluate(model, test, task.loss))
        horizons.append(_horizon(model, probe, task))
    ctx.progress.remove_task(bar)
    relative = [loss / task.baseline for loss in losses]
    solved = next((step for step, r in zip(at, relative) if r < SOLVED), None)
    return {"task": task.name, "T": task.steps, "cell": cell, "relative_loss": relative[-1], "solved_at": solved,
            "horizon_init": horizons[0], "horizon_final": horizons[-1], "nonfinite_steps": nonfinite,
            "checkpoints": at, "relative_curve": [round(r, 4) for r in relative], "horizons": horizons}


def _horizon(model: torch.nn.Module, probe: tuple, task: SequenceTask) -> int:
    """The memory horizon (steps back) that gd.checkup measures on the probe batch at the current weights."""
    return checkup(model, *probe, task.loss).measurement.recurrent[0].horizon


def _pick(rows: list[dict], task: str, cell: str) -> dict[int, dict]:
    return {row["T"]: row for row in rows if row["task"] == task and row["cell"] == cell}


def _describe(rows: dict[int, dict]) -> str:
    return ", ".join(f"T={t}: {row['relative_loss']:.3f}" for t, row in sorted(rows.items()))


def _lstm_claim(rows: list[dict]) -> Claim | None:
    tanh, default = _pick(rows, "adding", "tanh"), _pick(rows, "adding", "lstm")
    lstms = {cell: _pick(rows, "adding", cell) for cell in LSTMS if _pick(rows, "adding", cell)}
    if not tanh or not lstms:
        return None
    hard = [t for t, row in sorted(tanh.items()) if not row["relative_loss"] < FAILED]  # NaN fails too
    by_any = [t for t in hard if any(r[t]["relative_loss"] < SOLVED for r in lstms.values() if t in r)]
    by_default = [t for t in hard if t in default and default[t]["relative_loss"] < SOLVED]
    longest = max(tanh)
    measured = (f"adding, held-out loss / baseline — tanh RNN: {_describe(tanh)}; "
                + "; ".join(f"{cell}: {_describe(r)}" for cell, r in lstms.items())
                + f". Memory horizon at init, T={longest}: tanh {tanh[longest]['horizon_init']}, "
                + ", ".join(f"{cell} {r[longest]['horizon_init']}" for cell, r in lstms.items() if longest in r)
                + f" steps. T where tanh fails (>= {FAILED}): {hard}; solved (< {SOLVED}) there by default LSTM: "
                f"{by_default}, by some LSTM init: {by_any}.")
    copy = {cell: _pick(rows, "copy", cell) for cell in ("tanh", *LSTMS) if _pick(rows, "copy", cell)}
    if copy:
        measured += " Copy task, loss / baseline — " + "; ".join(f"{c}: {_describe(r)}" for c, r in copy.items()) + "."
    if hard and by_default == hard:
        verdict = "holds"
    elif by_any:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    return Claim("LSTM solves the vanishing gradient problem for sequences (Hochreiter & Schmidhuber 1997)",
                 measured, verdict)


def _forget_claim(rows: list[dict]) -> Claim | None:
    default = _pick(rows, "adding", "lstm")
    biased = {cell: _pick(rows, "adding", cell) for cell in ("lstm_forget", "lstm_chrono") if _pick(rows, "adding", cell)}
    if not default or not biased:
        return None
    never = float("inf")

    def speed(row: dict) -> float:
        return never if row["solved_at"] is None else row["solved_at"]

    contested = [t for t in sorted(default) if min(speed(default[t]), *(speed(r[t]) for r in biased.values())) < never]
    faster = [t for t in contested if min(speed(r[t]) for r in biased.values()) < speed(default[t])]
    measured = ("adding, steps to reach loss < 0.1 × baseline (None: not within the budget) — " + "; ".join(
        f"{cell}: " + ", ".join(f"T={t}: {row['solved_at']}" for t, row in sorted(r.items()))
        for cell, r in {"lstm": default, **biased}.items())
        + ". Memory horizon at init: " + "; ".join(
        f"{cell}: " + ", ".join(f"T={t}: {row['horizon_init']}" for t, row in sorted(r.items()))
        for cell, r in {"lstm": default, **biased}.items()) + f". Forget-gate bias faster at T in {faster} of "
        f"{contested} (T where some LSTM solved).")
    if contested and faster == contested:
        verdict = "holds"
    elif faster:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    return Claim("The forget-gate bias matters (Gers et al. 2000; Jozefowicz et al. 2015: b_f = 1)", measured, verdict)


def _irnn_claim(rows: list[dict]) -> Claim | None:
    irnn, tanh = _pick(rows, "adding", "irnn"), _pick(rows, "adding", "tanh")
    if not irnn or not tanh:
        return None
    solved = [t for t, row in sorted(irnn.items()) if row["relative_loss"] < SOLVED]
    beyond_tanh = [t for t in solved if not tanh[t]["relative_loss"] < FAILED]
    measured = (f"adding, loss / baseline — IRNN: {_describe(irnn)}; tanh RNN: {_describe(tanh)}. IRNN memory "
                "horizon init → final: " + ", ".join(
                    f"T={t}: {row['horizon_init']} → {row['horizon_final']}" for t, row in sorted(irnn.items()))
                + f". IRNN non-finite steps: {sum(row['nonfinite_steps'] for row in irnn.values())}.")
    if beyond_tanh and max(solved) >= 100:
        verdict = "holds"
    elif beyond_tanh:
        verdict = "holds with conditions"
    else:
        verdict = "does not hold"
    return Claim("IRNN (ReLU RNN, identity recurrent init) trains long dependencies (Le et al. 2015)", measured,
                 verdict)


def _notes(budget: Budget) -> list[str]:
    return [
        f"Budget per (task, T, cell): {budget.steps} Adam steps, lr {budget.lr}, batch {budget.batch} fresh "
        f"sequences per step, global-norm clipping at {budget.max_norm}, hidden {budget.hidden}, one layer, "
        f"{budget.test_size} held-out sequences, {budget.checkpoints} checkpoints after init; one thread.",
        "Tasks: the two-channel adding problem (lab.datasets.adding; baseline MSE 1/6) and the copy task of Arjovsky "
        "et al. 2016 (lab.datasets.copy_task; baseline 10 ln 8 / (T + 20) nats per step), one-hot inputs.",
        f"relative_loss = held-out loss / baseline; solved = below {SOLVED}, failed = above {FAILED}; solved_at = "
        "the first checkpoint below SOLVED. Horizon: gd.checkup's memory horizon (steps back over which the gradient "
        "per input step stays >= e^-3 of the last step's) on a fixed batch of 64.",
        "Deviations: far smaller models and budgets than the papers (Hochreiter & Schmidhuber 1997, Le et al. 2015 "
        "and Arjovsky et al. 2016 train for 10^4–10^6 steps with 100+ units) so that the run fits minutes on a CPU; "
        "a negative result here means 'not within this budget'. All cells share Adam and one learning rate "
        "(chosen in a pilot where the LSTMs learnt fastest); Le et al. train the IRNN with SGD and small rates. "
        "chrono init uses T_max = T (Tallec & Ollivier 2018).",
    ] + (["--quick: adding at T=100 only, cells tanh, lstm (default) and lstm_chrono (the forget-gate bias that "
          "learns within 400 steps here; b_f = 1 needs ~550 in a pilot), so the IRNN claim is not measured."]
         if budget is QUICK else [])


def _plot(rows: list[dict], ctx: Context) -> None:
    plotting = ctx.pyplot(NAME)
    if plotting is None:
        return
    plt, path = plotting

    tasks = sorted({row["task"] for row in rows})
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.5 * len(tasks), 8), squeeze=False)
    for column, task in enumerate(tasks):
        for cell in dict.fromkeys(row["cell"] for row in rows):
            picked = sorted(_pick(rows, task, cell).items())
            axes[0, column].plot([t for t, _ in picked], [r["relative_loss"] for _, r in picked], "o-", label=cell)
            axes[1, column].plot([t for t, _ in picked], [r["horizon_final"] for _, r in picked], "o-", label=cell)
        axes[0, column].set(title=f"{task}: held-out loss / baseline", xlabel="T", xscale="log", yscale="log")
        axes[1, column].set(title=f"{task}: memory horizon after training", xlabel="T", ylabel="steps back")
        axes[0, column].axhline(1.0, color="grey", lw=0.8)
        axes[0, column].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
