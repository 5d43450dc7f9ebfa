"""What `gd.autotrain` did: its rounds, the in-loop actions, and the trained model and optimizer.

    >>> result = gd.autotrain(model, opt, loader, loss_fn, steps=1000)
    >>> print(result)                     # the story: one line per round, then the actions in the loop
    >>> result.model, result.optimizer    # trained (the treated model when a round treated it)
    >>> gd.report(result, "autotrain.html")
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    healthy: bool  # the last round's run diagnosed without a warning or critical finding
    steps: int
    seconds: float

    def __str__(self) -> str:
        verdict = "healthy" if self.healthy else "not healthy: " + ", ".join(
            f"{f.kind} ({f.severity})" for f in self.run.diagnose().findings if f.severity != "info")
        restarts = sum(r.action == "restart" for r in self.rounds[1:])
        lines = [f"gd.autotrain: {self.steps} steps in {self.seconds:.1f} s, {restarts} restart(s); last run {verdict}"]
        lines += ["  " + str(r) for r in self.rounds]
        if self.interventions:
            lines.append(f"  in the loop ({len(self.interventions)}):")
            lines += [f"    round {i.detail.get('round', '?')}, {i}" for i in self.interventions[:20]]
            if len(self.interventions) > 20:
                lines.append(f"    ... and {len(self.interventions) - 20} more (result.interventions)")
        return "\n".join(lines)
