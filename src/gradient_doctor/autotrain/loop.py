"""`gd.autotrain`: train, watch, diagnose, repair, the way AUTOTRAINER (Zhang et al., ICSE 2021) does it.

    >>> result = gd.autotrain(model, optimizer, loader, nn.functional.cross_entropy, steps=2000)
    >>> print(result)
    >>> result.model, result.optimizer

The loop, round by round (at most `max_rounds` restarts):

0. **checkup at init** on the first batch; what it finds is treated (`gd.treat`: verified surgery, clipping
   attached to a rebuilt optimizer, learning-rate advice followed).
1. **watched training** (`gd.watch(..., guard=True)`): the guard skips updates with inf/NaN gradients, clips
   gradient-norm spikes to the run's own level, and rolls a diverging loss back with a lower learning rate.
2. **checks**: after `check_every` steps (a tenth of the budget, at least 30), then at twice, four times, ...
   as many, the run since the last action is diagnosed and the policy (policy.py) decides: go on; adjust in place (learning rate by the measured factor,
   clipping); or restart from the (treated) initial weights re-treated for the findings, when a structural
   problem shows before half the budget is spent.

A healthy model (nothing found at init, no finding at any check, no guard action) is trained exactly as the plain
loop `zero_grad; loss_fn(model(x), y).backward(); step` would: the same weights, bit for bit.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..diagnose import Diagnosis, checkup
from ..errors import InvalidType, InvalidValue
from ..record import Intervention
from ..treat import treat
from ..treat.optimizer import rebuild_optimizer
from ..treat.remedies.clipping import clip
from ..watch import Run, watch
from .batches import Batches, StepFn, batch_loss, check_loss, check_optimizer
from .policy import Decision, DoctorPolicy, Policy
from .result import AutoTrainResult, Round

#: Points of the every-n-th-step series (detail, update, activation statistics) in the first check's window: enough
#: for the rules' medians; the gradient norms are taken every step (the guard reads them).
POINTS_PER_CHECK = 3
_CLIP_METHODS = {"clip_grad_norm": "norm", "clip_grad_value": "value", "adaptive_clip": "agc"}


def autotrain(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Any],
    loss_fn: Callable | None = None,
    steps: int = 1000,
    *,
    log_dir: str | Path | None = None,
    max_rounds: int = 3,
    step_fn: StepFn | None = None,
) -> AutoTrainResult:
    """Train `model` for `steps` optimizer steps over `batches` (cycled), repairing what goes wrong.

    >>> result = gd.autotrain(model, torch.optim.SGD(model.parameters(), lr=0.1), loader,
    ...                       nn.functional.cross_entropy, steps=500)
    >>> result.healthy, [str(r) for r in result.rounds]

    `batches`: a DataLoader, a list or any re-iterable of (inputs, targets); `loss_fn(model(inputs), targets)` is
    the loss, unless `step_fn(model, batch) -> loss` computes it (then a batch may be anything). `log_dir`: each
    round's record goes to `log_dir/round-<n>`. `max_rounds`: restarts at most. The result holds the trained
    `.model` and `.optimizer` (new objects when a round treated the model), `.rounds`, `.run` (the last round's
    Run), `.interventions` and `.healthy`; `print(result)` tells the story, `gd.report(result, path)` draws it.
    """
    return train_rounds(model, optimizer, batches, loss_fn, steps, log_dir=log_dir, max_rounds=max_rounds,
                        step_fn=step_fn, policy=DoctorPolicy())


def train_rounds(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterable[Any], loss_fn: Callable | None,
    steps: int, *, log_dir: str | Path | None, max_rounds: int, step_fn: StepFn | None, policy: Policy,
    check_every: int | None = None,
) -> AutoTrainResult:
    """`autotrain` with the decisions of `policy` (the repair benchmark's baselines use their own)."""
    start = time.perf_counter()
    if not isinstance(model, nn.Module):
        raise InvalidType(f"gd.autotrain: model must be a torch.nn.Module; got {type(model).__name__}")
    check_optimizer(model, optimizer)
    for name, value, low in (("steps", steps, 1), ("max_rounds", max_rounds, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidValue(f"gd.autotrain: {name} must be an integer >= {low}; got {value!r}")
    if step_fn is None and not callable(loss_fn):
        raise InvalidType("gd.autotrain: pass loss_fn (output, targets) -> loss, or step_fn (model, batch) -> loss; "
                          f"got loss_fn={loss_fn!r:.60}")
    if step_fn is not None and not callable(step_fn):
        raise InvalidType(f"gd.autotrain: step_fn must be callable (model, batch) -> loss; got {type(step_fn).__name__}")
    data = Batches(batches, pairs=step_fn is None)
    check_loss(model, data.first, loss_fn, step_fn)
    loop = _Loop(model, optimizer, data, loss_fn, step_fn, policy, steps, log_dir,
                 check_every or max(30, steps // 10))
    return loop.run(max_rounds, start)


class _Loop:
    """The state of one autotrain call: the model to restart from, the optimizer to rebuild, the rounds so far."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, data: Batches, loss_fn: Callable | None,
                 step_fn: StepFn | None, policy: Policy, steps: int, log_dir: str | Path | None, check_every: int):
        self.user_model, self.user_optimizer = model, optimizer
        self.data, self.loss_fn, self.step_fn, self.policy = data, loss_fn, step_fn, policy
        self.steps, self.log_dir, self.check_every = steps, log_dir, check_every
        self.names = {id(p): _PREFIX * (step_fn is not None) + n for n, p in model.named_parameters()}
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.clipping: list[str] = []  # attached so far; carried across restarts
        self.rounds: list[Round] = []
        self.interventions: list[Intervention] = []

    def run(self, max_rounds: int, start: float) -> AutoTrainResult:
        model, optimizer = self.user_model, self.user_optimizer
        initial = _Start(copy.deepcopy(model), self._checkup(model))
        decision = self.policy.at_init(initial.checkup)
        if decision.action == "restart":
            model, optimizer, round0, initial = self._treat(initial, decision, 0, lr_scale=1.0)
        else:
            round0 = Round(0, [], "go_on", decision.why)
        self.rounds.append(round0)
        restarts = 0
        while True:
            index = len(self.rounds)
            restart, run = self._train(model, optimizer, index, initial, max_rounds - restarts)
            if restart is None:
                break
            restarts += 1
            model, optimizer, initial = restart
        return AutoTrainResult(model, optimizer, self.rounds, run, self.interventions,
                               sum(r.steps for r in self.rounds), time.perf_counter() - start)

    # -- a round of watched training ------------------------------------------------------------
    def _train(self, model: nn.Module, optimizer: torch.optim.Optimizer, index: int, initial: _Start,
               restarts_left: int) -> tuple[tuple[nn.Module, torch.optim.Optimizer, _Start] | None, Run]:
        """One round; returns (the re-treated model, optimizer and start to restart with, or None at the end, the
        Run)."""
        log_dir = None if self.log_dir is None else Path(self.log_dir) / f"round-{index}"
        record = Round(index, [], "go_on", log_dir=None if log_dir is None else str(log_dir))
        self.rounds.append(record)
        restart, since, losses = None, 0, []
        model.train()
        with watch(model, optimizer, log_dir=log_dir, guard=True, flush_every=self.check_every,
                   **cadence(self.check_every)) as run:
            batches = self.data.cycle()
            for step in range(self.steps):
                optimizer.zero_grad(set_to_none=True)
                loss = batch_loss(model, next(batches), self.loss_fn, self.step_fn)
                loss.backward()
                optimizer.step()
                run.step(loss=loss)
                losses.append(loss.detach())
                done = step + 1
                if not _check_due(done, self.check_every) or done == self.steps:
                    continue
                decision = self.policy.at_check(run.diagnose(window=done - since), step=done, steps=self.steps,
                                                restarts_left=restarts_left)
                if decision.action == "restart":
                    restart = self._restart(initial, decision, record, optimizer)
                    if restart is not None:
                        break
                    since = done  # nothing to restart with: not decided again on the same evidence
                elif decision.action == "adjust":
                    self._adjust(model, optimizer, decision, index, done - 1)
                    since = done
                    record.findings += [k for k in _names(decision) if k not in record.findings]
            record.steps = done
            recent = torch.stack(losses[-self.check_every:]).float()
            finite = recent[torch.isfinite(recent)]  # a batch of inf/NaN (skipped by the guard) is not the loss
            record.loss = float(finite.mean()) if finite.numel() else float("nan")
        self.interventions += [Intervention(i.step, i.kind, {**i.detail, "round": index}) for i in run.interventions]
        self.interventions.sort(key=lambda i: (i.detail["round"], i.step))
        return restart, run

    def _restart(self, initial: _Start, decision: Decision, record: Round,
                 optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer, _Start] | None:
        """The re-treated initial model, its optimizer and start, or None when the policy would rather go on (a
        re-treatment that changes nothing, see `DoctorPolicy.unremedied`). The learning rates carry what the
        round did to them (adjustments, rollbacks) times the decision's factor."""
        lr_scale = optimizer.param_groups[0]["lr"] / self.base_lrs[0] if self.base_lrs[0] else 1.0
        model, optimizer, told, start = self._treat(initial, decision, record.index, lr_scale)
        if not told.applied and decision.lr_factor == 1 and not told.clipping:
            decision = self.policy.unremedied(decision)
            if decision.action != "restart":
                record.findings += [k for k in _names(decision) if k not in record.findings]
                return None
            model, optimizer, told, start = self._treat(initial, decision, record.index, lr_scale)
        record.action, record.why = "restart", decision.why
        record.findings += [k for k in _names(decision) if k not in record.findings]
        record.applied, record.rejected = told.applied, told.rejected
        record.clipping, record.lr_factor = told.clipping, told.lr_factor
        return model, optimizer, start

    def _adjust(self, model: nn.Module, optimizer: torch.optim.Optimizer, decision: Decision, index: int,
                step: int) -> None:
        """Learning rate scaled and clipping attached, in place; noted as interventions of the round."""
        if decision.lr_factor != 1:
            for group in optimizer.param_groups:
                group["lr"] *= decision.lr_factor
            self.interventions.append(Intervention(step, "lr_scaled", {"factor": decision.lr_factor, "round": index,
                                                                       "why": decision.why}))
        for name in decision.clipping:
            if name not in self.clipping and name in _CLIP_METHODS:
                clip(optimizer, _CLIP_METHODS[name], model=model if name == "adaptive_clip" else None)
                self.clipping.append(name)
                self.interventions.append(Intervention(step, "clipping_attached", {"method": name, "round": index}))

    # -- checkup and treatment -----------------------------------------------------------------------
    def _checkup(self, model: nn.Module) -> Diagnosis:
        subject, inputs, targets, loss_fn = self._subject(model)
        return checkup(subject, inputs, targets, loss_fn)

    def _treat(self, start: _Start, decision: Decision, index: int, lr_scale: float):
        """The treated model, its optimizer (the user's class and hyperparameters, the learning rates scaled by
        `lr_scale` and the decision's factor, clipping attached), the Round that tells it and the treated start.
        `start.model` is left as it is: treat works on a copy."""
        subject, inputs, targets, loss_fn = self._subject(start.model)
        treatment = treat(subject, decision.remedies, inputs, targets, loss_fn, before=start.checkup)
        treated = treatment.model.model if self.step_fn is not None else treatment.model
        new_clipping = [n for n in dict.fromkeys(decision.clipping + treatment.training) if n not in self.clipping]
        self.clipping += new_clipping
        optimizer, _ = rebuild_optimizer(self.user_optimizer, treatment.model, self.clipping, self.names)
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["lr"] = base * lr_scale * decision.lr_factor
        record = Round(index, _names(decision), "treat" if index == 0 else "restart", decision.why,
                       applied=list(treatment.applied),
                       rejected=[f"{name}: {why}" for name, why in treatment.rejected], clipping=new_clipping,
                       lr_factor=decision.lr_factor)
        return treated, optimizer, record, _Start(copy.deepcopy(treated), treatment.after)

    def _subject(self, model: nn.Module) -> tuple[nn.Module, Any, Any, Callable | None]:
        """What checkup and treat see: the model on the first batch, or with `step_fn` the model wrapped so that
        its forward on the batch is the loss."""
        if self.step_fn is None:
            inputs, targets = self.data.first
            return model, inputs, targets, self.loss_fn
        return _Stepped(model, self.step_fn), [self.data.first], None, _identity


_PREFIX = "model."


@dataclass(frozen=True)
class _Start:
    """The weights a restart starts from (a copy, never trained) and their checkup on the first batch, which
    `gd.treat` then need not take again: `_Start(copy.deepcopy(model), checkup(model, x, y, loss_fn))`."""

    model: nn.Module
    checkup: Diagnosis


def cadence(check_every: int) -> dict[str, int]:
    """The watch's cadences while autotraining: gradient norms every step, the other statistics POINTS_PER_CHECK
    times per check window (every 10th step at the first check's floor of 30 steps; sparser, and cheaper, on long
    budgets).

    >>> cadence(30), cadence(200)["detail_every"]
    ({'every': 1, 'detail_every': 10, 'update_every': 10, 'activation_every': 10}, 66)
    """
    sparse = max(1, check_every // POINTS_PER_CHECK)
    return {"every": 1, "detail_every": sparse, "update_every": sparse, "activation_every": sparse}


def _check_due(done: int, every: int) -> bool:
    """Checks after `every` steps, then at twice as many, four times, ...: problems show early, and each check
    costs a diagnosis.

    >>> [n for n in range(1, 1000) if _check_due(n, 100)]
    [100, 200, 400, 800]
    """
    quotient, remainder = divmod(done, every)
    return remainder == 0 and quotient & (quotient - 1) == 0


class _Stepped(nn.Module):
    """`model` with `step_fn` as its forward: `_Stepped(model, step_fn)(batch) == step_fn(model, batch)`."""

    def __init__(self, model: nn.Module, step_fn: StepFn):
        super().__init__()
        self.model = model
        self.step_fn = step_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.step_fn(self.model, batch)


def _identity(loss: torch.Tensor) -> torch.Tensor:
    return loss


def _names(decision: Decision) -> list[str]:
    remedies = decision.remedies
    if isinstance(remedies, Diagnosis):
        return list(dict.fromkeys(f"{f.kind} ({f.severity})" for f in remedies.findings if f.severity != "info"))
    return [decision.why] if decision.why else []
