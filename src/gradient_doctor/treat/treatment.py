"""`gd.treat`: apply ranked remedies cheapest-first, verify each with checkup on the same batch, keep what helps.

    >>> t = gd.treat(model, gd.checkup(model, x), inputs=x)
    >>> t.applied, t.after.healthy
    (['he_init'], True)
    >>> opt = t.rebuild_optimizer(opt)     # same class and hyperparameters over the treated model's parameters
    >>> print(t)                           # what was applied or rejected and why, the architecture diff, budgets

Each candidate remedy is applied to a copy of the current model; `checkup` measures the copy on the batch; the
copy is kept only when the gradient budget moved closer to balance and nothing new broke (treat/health.py),
otherwise it is dropped (rolled back) with the reason. After each kept remedy the search starts again from the
cheapest, while problems remain (up to `max_applied` remedies), so a remedy can follow another. With
`trial_steps=N` every candidate that passes checkup is also trained N steps on the batch (treat/trial.py), and
the one whose loss fell most is kept, provided it fell at least as much as the model's before it.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..diagnose.checkup.preflight import checkup
from ..diagnose.finding import Diagnosis
from ..errors import InvalidType, InvalidValue, NotApplicable, UnsafeRemedy
from ..probe.batch.calling import Inputs
from ..probe.keras_layers import backend_hint, is_keras
from ..probe.layers import discover
from .diff import architecture, architecture_diff
from .health import Health, worse_reason
from .optimizer import rebuild_optimizer
from .registry import Context, Remedy, lookup
from .remedies.init import own_initialisers
from .trial import OptimizerFactory, default_optimizer, loss_drop


@dataclass
class Treatment:
    """The treated model, what was applied (in order), what was rejected and why, and the checkups around it."""

    model: nn.Module
    applied: list[str]
    rejected: list[tuple[str, str]]  # (remedy, reason), for every candidate not applied
    before: Diagnosis
    after: Diagnosis
    diff: list[str]  # architecture diff, "- name: Module(...)" / "+ name: Module(...)"
    training: list[str] = field(default_factory=list)  # clipping remedies, attached by rebuild_optimizer
    advice: list[str] = field(default_factory=list)  # remedies for the user to carry out (learning rate, ...)
    clippers: list[Any] = field(default_factory=list)  # handles of the clipping hooks rebuild_optimizer attached
    origin_names: dict[int, str] = field(default_factory=dict, repr=False)  # id(untreated parameter) -> name

    def rebuild_optimizer(self, old: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """A new optimizer of `old`'s class and per-group hyperparameters over the treated model's parameters
        (state such as momentum starts afresh), with the clipping remedies of `training` attached to it.

            >>> optimizer = treatment.rebuild_optimizer(optimizer)
        """
        optimizer, self.clippers = rebuild_optimizer(old, self.model, self.training, self.origin_names)
        return optimizer

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from .render import render

        yield render(self)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)


#: Generic inits that re-draw every weight: a model's own init (`own_init`) is tried before the first of them.
REDRAWING = ("he_init", "xavier_init", "orthogonal_init", "lsuv_init", "critical_init")


def treat(
    model: nn.Module,
    diagnosis_or_remedies: Diagnosis | Sequence[str] | None = None,
    inputs: Inputs | None = None,
    targets: Any = None,
    loss_fn: Callable | None = None,
    *,
    inplace: bool = False,
    trial_steps: int = 0,
    trial_optimizer: OptimizerFactory = default_optimizer,
    max_applied: int = 8,
    seed: int = 0,
    before: Diagnosis | None = None,
) -> Treatment:
    """Treat `model` with the remedies a diagnosis ranks (or the names given), verified on the batch `inputs`.

    >>> model = nn.Sequential(*[m for _ in range(19) for m in (nn.Linear(64, 64), nn.Sigmoid())], nn.Linear(64, 10))
    >>> treat(model, inputs=torch.randn(128, 64)).applied     # the remedies its checkup on this batch ranks
    ['he_init', 'swap_activation:relu']

    `diagnosis_or_remedies`: None (the findings of the checkup on `inputs`, which `treat` runs anyway), a
    Diagnosis (its warning/critical findings' remedies; from `checkup` or `run.diagnose()`), or remedy names.
    `inputs`, `targets`, `loss_fn` are as for `checkup`. The model is deep-copied unless `inplace=True`, in which
    case the treated structure and weights are moved into `model` itself (when its root type is unchanged).
    Device and dtype are preserved. `reduce_depth` and `greedy_pretrain` run only when named explicitly.
    `before`: the checkup of `model` on this batch (`checkup(model, inputs, targets, loss_fn, seed=seed)`) when the
    caller already took it (`gd.autotrain` does): it is not taken again.
    """
    if not isinstance(model, nn.Module):
        raise InvalidType(f"model must be a torch.nn.Module; got {type(model).__name__}{backend_hint(model)}")
    if inputs is None:
        raise InvalidValue("treat verifies every remedy with checkup on a batch: pass inputs=... (and targets/loss_fn "
                         "for the task loss)")
    for name, value in (("trial_steps", trial_steps), ("max_applied", max_applied)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidValue(f"{name} must be a non-negative int; got {value!r}")
    if before is not None:
        _check_before(model, before)
    names, explicit = _remedy_names(diagnosis_or_remedies) if diagnosis_or_remedies is not None else ([], False)
    remedies = [lookup(name) for name in names]

    def check(candidate: nn.Module) -> Diagnosis:
        return checkup(candidate, inputs, targets, loss_fn, seed=seed)

    def trial(candidate: nn.Module) -> float:
        return loss_drop(candidate, inputs, targets, loss_fn, steps=trial_steps, optimizer=trial_optimizer,
                         seed=seed)

    structure = architecture(model)
    origin_names = {id(p): name for name, p in model.named_parameters()}
    current = copy.deepcopy(model)
    before = check(current) if before is None else before
    state = _State(current, before, Health.of(before), trial(current) if trial_steps else math.nan)
    if diagnosis_or_remedies is None:
        remedies = [lookup(name) for name in _remedy_names(before)[0]]
    if not explicit:
        remedies = _own_init_first(model, remedies)
    kept: list[Remedy] = []
    rejected: dict[str, str] = {}
    surgery = sorted((r for r in remedies if r.kind == "surgery"), key=lambda r: r.cost)
    for remedy in [r for r in surgery if r.opt_in and not explicit]:
        rejected[remedy.name] = "opt-in: runs only when named explicitly"
    pending = [r for r in surgery if explicit or not r.opt_in]
    context = Context(inputs, _sequence_length(before))
    while len(kept) < max_applied and not (state.health.healthy and not explicit):
        chosen: tuple[Remedy, _State] | None = None
        for remedy in [r for r in pending if _worth_retrying(r, kept)]:
            outcome = _attempt(remedy, state, context, check, trial if trial_steps else None, seed + len(kept))
            if isinstance(outcome, str):
                rejected[remedy.name] = outcome
                if outcome.startswith(("not applicable", "failed", "unsafe")):
                    pending.remove(remedy)
                continue
            if chosen is None or outcome.loss_drop > chosen[1].loss_drop:
                chosen = (remedy, outcome)
            if not trial_steps:  # cheapest first: the first remedy that helps is taken
                break
        if chosen is None:
            break
        state = chosen[1]
        kept.append(chosen[0])
    applied = [r.name for r in kept]
    for name in applied:
        rejected.pop(name, None)
    treated = _settle(model, state.model, inplace)
    return Treatment(
        model=treated,
        applied=applied,
        rejected=list(rejected.items()),
        before=before,
        after=state.diagnosis,
        diff=architecture_diff(structure, architecture(treated)),
        training=[r.name for r in remedies if r.kind == "training"],
        advice=[r.name for r in remedies if r.kind == "advice"],
        origin_names=origin_names,
    )


@dataclass(frozen=True)
class _State:
    model: nn.Module
    diagnosis: Diagnosis
    health: Health
    loss_drop: float  # NaN without trials


def _attempt(remedy: Remedy, state: _State, context: Context, check: Callable[[nn.Module], Diagnosis],
             trial: Callable[[nn.Module], float] | None, seed: int) -> _State | str:
    """The state after `remedy`, or the reason it was rolled back."""
    candidate = copy.deepcopy(state.model)
    placement = _placement(candidate)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            candidate = remedy.apply(candidate, context)
    except NotApplicable as err:
        return f"not applicable: {err}"
    except UnsafeRemedy as err:
        return f"unsafe: {err}"
    except Exception as err:  # a remedy's bug must not lose the user's model: report it, keep the last good state
        warnings.warn(f"gradient-doctor: remedy {remedy.name} failed ({type(err).__name__}: {err}); rolled back",
                      RuntimeWarning, stacklevel=3)
        return f"failed: {type(err).__name__}: {err}"
    moved = _placement(candidate) - placement
    if moved:
        return f"failed: changed the device/dtype of the parameters to {sorted(map(str, moved))}"
    try:
        diagnosis = check(candidate)
    except Exception as err:  # e.g. batch norm on a batch of one: the treated model cannot run this batch
        return f"failed: checkup of the treated model: {type(err).__name__}: {err}"
    health = Health.of(diagnosis)
    reason = worse_reason(state.health, health)
    if reason is not None:
        return reason
    drop = trial(candidate) if trial is not None else math.nan
    if trial is not None and not drop > -math.inf:
        return "trial: the loss became non-finite in training"
    if trial is not None and not drop >= state.loss_drop:
        return f"trial: loss fell by {drop:.1%} in training, the model before it {state.loss_drop:.1%}"
    return _State(candidate, diagnosis, health, drop)


def _own_init_first(model: nn.Module, remedies: list[Remedy]) -> list[Remedy]:
    """`own_init` just before the first generic init that re-draws every weight (REDRAWING) when a module of `model`
    defines its own `_init_weights`: a transformers model with its weights scaled x30 is back at its healthy loss
    with its own init, where LSUV, ranked first for its exploding gradient, left GPT-2 at 6.2 (healthy 4.8) and
    BERT at 6.1 (healthy 0.65) after 100 steps (`python -m benchmarks.real_autotrain`). Inits that keep the weights
    (zero biases, a forget-gate bias) stay ahead of it."""
    names = [r.name for r in remedies]
    first = next((i for i, name in enumerate(names) if name in REDRAWING), None)
    if first is None or "own_init" in names or not own_initialisers(model):
        return remedies
    return [*remedies[:first], lookup("own_init"), *remedies[first:]]


def _worth_retrying(remedy: Remedy, kept: list[Remedy]) -> bool:
    """Not applied yet, or the model's structure changed (a remedy of cost >= 1) since it last was: re-drawing
    the same init on the same architecture only samples the same distribution again."""
    last = max((i for i, r in enumerate(kept) if r.name == remedy.name), default=None)
    return last is None or any(r.cost >= 1 for r in kept[last + 1:])


def _check_before(model: nn.Module, before: Any) -> None:
    """`before` must be a checkup (a Diagnosis with its measurement) of `model`: every layer it measured is a module
    of `model` (a checkup of another model would make every comparison wrong).

    >>> _check_before(model, gd.checkup(other_model, x))   # InvalidValue: names the layers model does not have
    """
    if not isinstance(before, Diagnosis) or before.measurement is None:
        raise InvalidType(f"before must be the checkup of the model on this batch (gd.checkup); got {before!r:.80}")
    names = {layer.name for layer in discover(model)[0]}  # as checkup names them (the root: its class name)
    foreign = [layer.name for layer in before.measurement.layers if layer.name not in names]
    if foreign:
        raise InvalidValue(f"before must be the checkup of this model; it measured layers the model does not have: "
                           f"{foreign[:5]}{' ...' if len(foreign) > 5 else ''}")


def _remedy_names(source: Diagnosis | Sequence[str]) -> tuple[list[str], bool]:
    """The remedy names, in order and without repeats, and whether they were named explicitly (not a diagnosis)."""
    if isinstance(source, Diagnosis):
        serious = [f for f in source.findings if f.severity in ("warning", "critical")]
        return list(dict.fromkeys(name for f in serious for name in f.remedies)), False
    if isinstance(source, str) or not isinstance(source, Sequence) or not all(isinstance(n, str) for n in source):
        raise InvalidType("expected a Diagnosis or a list of remedy names such as ['he_init', 'insert_norm:batch']; "
                        f"got {source!r:.80}")
    return list(dict.fromkeys(source)), True


def _sequence_length(diagnosis: Diagnosis) -> int | None:
    m = diagnosis.measurement
    return max((t.steps for t in m.recurrent), default=None) if m is not None else None


def _placement(model: nn.Module) -> set[tuple[str, str]]:
    return {(str(p.device), str(p.dtype)) for p in model.parameters()}


def _settle(original: nn.Module, treated: nn.Module, inplace: bool) -> nn.Module:
    """`treated`, moved into the `original` object when `inplace` and the root type is unchanged."""
    if not inplace or treated is original:
        return treated
    if is_keras(original):
        warnings.warn("gradient-doctor: inplace=True cannot move a treated Keras model into the original object: use "
                      "Treatment.model", UserWarning, stacklevel=3)
        return treated
    if type(treated) is not type(original):
        warnings.warn(f"gradient-doctor: the treatment replaced the root module ({type(original).__name__} -> "
                      f"{type(treated).__name__}); inplace=True cannot keep the object: use Treatment.model",
                      UserWarning, stacklevel=3)
        return treated
    original.__dict__.update(treated.__dict__)
    return original
