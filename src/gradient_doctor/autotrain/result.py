"""What `gd.autotrain` did: its rounds, the in-loop actions, and the trained model and optimizer.

    >>> result = gd.autotrain(model, opt, loader, loss_fn, steps=1000)
    >>> print(result)                     # the story: one line per round, then the actions in the loop
    >>> result.model, result.optimizer    # trained (the treated model when a round treated it)
    >>> gd.report(result, "autotrain.html")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import nn

from ..record import Intervention


@dataclass
class Round:
    """One round: round 0 is the checkup at init; each later round is one watched training from the
    (treated) initial weights, ended by a restart or by the end of the budget."""

    index: int
    findings: list[str]  # "kind (severity)" of what the round's decision was about
    action: str  # "go_on", "restart", or for round 0 "treat" / "go_on"
    why: str = ""
    applied: list[str] = field(default_factory=list)  # surgery kept by gd.treat
    rejected: list[str] = field(default_factory=list)  # "remedy: reason"
    clipping: list[str] = field(default_factory=list)  # clipping attached to the optimizer
    lr_factor: float = 1.0  # learning-rate factor applied when the round began
    steps: int = 0  # optimizer steps trained in this round
    loss: float | None = None  # mean loss of the round's last steps
    log_dir: str | None = None

    def __str__(self) -> str:
        if self.index == 0:
            head = "round 0, checkup at init: " + (", ".join(self.findings) or "healthy")
        else:
            head = f"round {self.index}: {self.steps} steps" + (f", loss {self.loss:.4g}" if self.loss is not None
                                                                else "")
            if self.findings:
                head += "; found " + ", ".join(self.findings)
        did = [f"applied {', '.join(self.applied)}"] if self.applied else []
        did += [f"attached {', '.join(self.clipping)}"] if self.clipping else []
        did += [f"learning rate x{self.lr_factor:g}"] if self.lr_factor != 1 else []
        if self.action == "restart":
            did.append("restarted from the initial weights")
        return head + (" -> " + "; ".join(did) if did else "")


@dataclass
class AutoTrainResult:
    """The trained model and optimizer, each round, every in-loop action, and the last round's watched `run`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    rounds: list[Round]
    run: Any  # gd.Run of the last round
    interventions: list[Intervention]  # guard actions and in-place adjustments, all rounds, in order
    steps: int
    seconds: float

    @cached_property
    def healthy(self) -> bool:
        """The last round's run diagnosed without a warning or critical finding, and no update of it skipped or
        rolled back by the guard (diagnosed when first asked: training does not pay for it)."""
        last = self.rounds[-1].index
        return self.run.diagnose().healthy and not any(
            i.kind in ("skipped_update", "rolled_back") for i in self.interventions if i.detail.get("round") == last)

    def action_lines(self) -> list[str]:
        """The actions in the loop, one line per round and kind: `round 2: skipped update 38 times at steps 2, 10, ...`."""
        return _grouped(self.interventions)

    def __str__(self) -> str:
        verdict = "healthy" if self.healthy else "not healthy: " + ", ".join(
            f"{f.kind} ({f.severity})" for f in self.run.diagnose().findings if f.severity != "info")
        restarts = sum(r.action == "restart" for r in self.rounds[1:])
        lines = [f"gd.autotrain: {self.steps} steps in {self.seconds:.1f} s, {restarts} restart(s); last run {verdict}"]
        lines += ["  " + str(r) for r in self.rounds]
        if self.interventions:
            lines.append(f"  in the loop ({len(self.interventions)} actions; result.interventions lists each):")
            lines += ["    " + line for line in self.action_lines()]
        return "\n".join(lines)


def _grouped(interventions: list[Intervention], shown: int = 6) -> list[str]:
    """One line per round and kind of action: how many, at which steps (the first `shown`), and the detail of the
    only one when there is one.

    >>> _grouped([Intervention(2, "skipped_update", {"round": 1}), Intervention(10, "skipped_update", {"round": 1})])
    ['round 1: skipped update 2 times at steps 2, 10']
    """
    groups: dict[tuple[object, str], list[Intervention]] = {}
    for action in interventions:
        groups.setdefault((action.detail.get("round"), action.kind), []).append(action)
    lines = []
    for (round_index, kind), actions in groups.items():
        steps = ", ".join(str(a.step) for a in actions[:shown]) + (", ..." if len(actions) > shown else "")
        told = ""
        if len(actions) == 1:
            detail = {k: v for k, v in actions[0].detail.items() if k != "round"}
            told = " (" + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in detail.items()) + ")" if detail else ""
        times = f" {len(actions)} times" if len(actions) > 1 else ""  # not "x1": read as a factor beside lr scaled
        lines.append(f"round {round_index}: {kind.replace('_', ' ')}{times} at step{'s' * (len(actions) > 1)} "
                     f"{steps}{told}")
    return lines
