"""Peers of `gd.watch` for the overhead benchmark: one adapter per tool, each attaching to a model.

    >>> attached = PEERS["tensorboard"].attach(model, optimizer, cadence=10, tmp=Path("/tmp/x"))
    >>> for _ in range(steps):       # the training step, with the adapter's hooks in place:
    ...     optimizer.zero_grad(); loss = attached.loss_backward(model(x), y); optimizer.step()
    ...     attached.after_step(loss)
    >>> attached.close()

Every adapter runs its tool at the same cadence N (every step, or every N-th step counted from the
first), with the tool's documented usage, after `optimizer.step()` (the gradients are still there:
the next step zeroes them). What each computes at its cadence is `Peer.computes`. A tool that cannot
be imported raises `PeerUnavailable` ("not installed" when its own module is missing, else "import
fails", with the error line); one that does not support the model raises it with "unsupported".
"""

from __future__ import annotations

import importlib
import importlib.metadata
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import torch
from torch import Tensor, nn

import gradient_doctor as gd


class PeerUnavailable(Exception):
    """A peer that cannot run here: `status` is "not installed", "import fails" or "unsupported"."""

    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status, self.reason = status, reason


def _cross_entropy_backward(outputs: Tensor, targets: Tensor) -> Tensor:
    loss = nn.functional.cross_entropy(outputs, targets)
    loss.backward()
    return loss


@dataclass
class Attached:
    """A peer attached to one model: the training step calls `loss_backward` then, after
    `optimizer.step()`, `after_step(loss)`; `close()` detaches. `records` holds what the tool
    handed back (what a logger would receive), for checks.

    >>> attached = Attached(after_step=lambda loss: None, close=lambda: None)
    >>> loss = attached.loss_backward(model(x), y)        # default: cross-entropy, then backward()
    """

    after_step: Callable[[Tensor], object]
    close: Callable[[], object]
    loss_backward: Callable[[Tensor, Tensor], Tensor] = _cross_entropy_backward
    records: list[Any] = field(default_factory=list)


Attach = Callable[[nn.Module, torch.optim.Optimizer, int, Path], Attached]  # (model, optimizer, cadence, tmp)


@dataclass(frozen=True)
class Peer:
    """A tool to compare: `attach(model, optimizer, cadence, tmp)` -> `Attached`; `tmp` is a fresh
    directory for whatever it writes. `cadenced` is False for the plain baseline (no cadence).

    >>> Peer("plain", "nothing", attach_plain, cadenced=False).attach(model, optimizer, 1, tmp)
    Attached(after_step=<function ...>, close=<function ...>, ...)
    """

    name: str
    computes: str
    attach: Attach
    distribution: str | None = None  # whose version to report
    cadenced: bool = True


def peer_version(peer: Peer) -> str:
    """The installed version of the peer's distribution, "not installed", or "–" for the baseline.

        >>> peer_version(PEERS["wandb"])
        '0.31.0'
    """
    if peer.distribution is None:
        return "–"
    try:
        return importlib.metadata.version(peer.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def require(module: str) -> ModuleType:
    """Import `module` for a peer, or raise `PeerUnavailable` saying why it cannot be imported.

        >>> require("cockpit")      # with setuptools >= 81 (no pkg_resources)
        PeerUnavailable: import fails: ModuleNotFoundError: No module named 'pkg_resources' (at cockpit/...
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if (error.name or "").split(".")[0] == module.split(".")[0]:
            raise PeerUnavailable("not installed", f"{type(error).__name__}: {error}") from error
        frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith("<")]
        at = "".join(f" (at {Path(f.filename).parent.name}/{Path(f.filename).name} line {f.lineno})"
                     for f in frames[-1:])
        raise PeerUnavailable("import fails", f"{type(error).__name__}: {error}{at}") from error


class Every:
    """Counts calls; true on the first and then every `cadence`-th: steps 0, N, 2N, ...

        >>> due = Every(3); [due() for _ in range(7)], due.step
        ([True, False, False, True, False, False, True], 6)
    """

    def __init__(self, cadence: int):
        if cadence < 1:
            raise ValueError(f"cadence must be a positive number of steps, got {cadence}")
        self.cadence, self.step = cadence, -1

    def __call__(self) -> bool:
        self.step += 1
        return self.step % self.cadence == 0


# -- adapters ------------------------------------------------------------------------------------
def attach_plain(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """Nothing attached: plain against plain measures the comparison's own noise.

    >>> attach_plain(model, optimizer, 1, tmp).after_step(loss)       # does nothing
    """
    return Attached(after_step=lambda loss: None, close=lambda: None)


TEMP_DIR = "<fresh temp dir>"  # in gd.watch keyword arguments: stands for the fresh temporary directory


def gd_attach(kwargs: dict[str, Any] | None = None) -> Attach:
    """`gd.watch(model, optimizer, **kwargs)` and `run.step(loss=loss)` every step; without `kwargs`,
    every cadence (`every`, `detail_every`, `update_every`, `activation_every`) is N.

    >>> attached = gd_attach({"log_dir": TEMP_DIR})(model, optimizer, 10, tmp)     # log_dir becomes str(tmp)
    >>> attached.records[0]                                                          # the gd.watch run
    """

    def attach(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
        chosen = kwargs if kwargs is not None else {
            "every": cadence, "detail_every": cadence, "update_every": cadence, "activation_every": cadence}
        run = gd.watch(model, optimizer, **{k: (str(tmp) if v == TEMP_DIR else v) for k, v in chosen.items()})
        return Attached(after_step=lambda loss: run.step(loss=loss), close=run.close, records=[run])

    return attach


def attach_wandb(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """`run.watch(model, log="gradients", log_freq=N)` in an offline run; `run.log({"loss": ...})`
    every step commits the step's row (without a log call wandb keeps the histograms uncommitted).

    >>> attached = attach_wandb(model, optimizer, 10, tmp)     # PeerUnavailable("not installed", ...) without wandb
    >>> attached.after_step(loss); attached.close()           # close() unwatches and finishes the run
    """
    wandb = require("wandb")
    run = wandb.init(mode="offline", dir=str(tmp), project="gd-overhead",
                     settings=wandb.Settings(silent=True, console="off"))
    run.watch(model, log="gradients", log_freq=cadence)

    def close() -> None:
        run.unwatch(model)
        run.finish()

    return Attached(after_step=lambda loss: run.log({"loss": loss.item()}), close=close)


def attach_tensorboard(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """`SummaryWriter.add_histogram(name, param.grad, step)` for each parameter, every N steps.

    >>> attached = attach_tensorboard(model, optimizer, 10, tmp)    # an event file under tmp
    >>> attached.after_step(loss)                                   # histograms on steps 0, 10, 20, ...
    """
    writer = require("torch.utils.tensorboard").SummaryWriter(str(tmp))
    due = Every(cadence)

    def after_step(loss: Tensor) -> None:
        if due():
            for name, param in model.named_parameters():
                if param.grad is not None:
                    writer.add_histogram(name, param.grad, due.step)

    return Attached(after_step=after_step, close=writer.close)


def attach_lightning(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """`lightning.pytorch.utilities.grad_norm(model, norm_type=2)` every N steps, each norm turned
    into a float as Lightning's loggers do with logged tensors (`.item()`); the dict is kept.

    >>> attached = attach_lightning(model, optimizer, 10, tmp); attached.after_step(loss)
    >>> attached.records[0]
    (0, {'grad_2.0_norm/0.weight': 0.41, ..., 'grad_2.0_norm_total': 1.3})
    """
    grad_norm = require("lightning.pytorch.utilities").grad_norm
    due = Every(cadence)
    attached = Attached(after_step=lambda loss: None, close=lambda: None)

    def after_step(loss: Tensor) -> None:
        if due():
            attached.records.append((due.step, {k: v.item() for k, v in grad_norm(model, norm_type=2).items()}))

    attached.after_step = after_step
    return attached


def attach_traintools(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """`traintools.gradhealth.GradientHealthMonitor().inspect(model, step=, lr=)` every N steps (its
    documented call after `backward()`; here after `optimizer.step()`, same work); reports are kept.

    >>> attached = attach_traintools(model, optimizer, 10, tmp); attached.after_step(loss)
    >>> attached.records[0]                                    # a GradientHealthResult, for step 0
    """
    monitor = require("traintools.gradhealth").GradientHealthMonitor()
    due = Every(cadence)
    attached = Attached(after_step=lambda loss: None, close=lambda: None)

    def after_step(loss: Tensor) -> None:
        if due():
            attached.records.append(monitor.inspect(model, step=due.step, lr=optimizer.param_groups[0]["lr"]))

    attached.after_step = after_step
    return attached


def backpack_unsupported(model: nn.Module) -> str | None:
    """Why BackPACK (whose per-sample gradients Cockpit uses) cannot handle `model`, or None.

        >>> backpack_unsupported(nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True)))
        "module '1': ReLU(inplace=True) is in-place; BackPACK's backward hooks fail on in-place modules"

    Reasons: an in-place module (its module hooks then fail in backward), or parameters held by a
    module type its BatchGrad extension has no rule for (it would skip them with a warning)."""
    known = require("backpack.extensions").BatchGrad()._BackpropExtension__module_extensions  # type -> rule
    for name, module in model.named_modules():
        where = f"module {name!r}" if name else type(model).__name__
        if getattr(module, "inplace", False):
            return f"{where}: {module} is in-place; BackPACK's backward hooks fail on in-place modules"
        if next(module.parameters(recurse=False), None) is not None and type(module) not in known:
            return f"{where}: BackPACK's BatchGrad has no extension for {type(module).__name__}, which holds parameters"
    return None


def attach_cockpit(model: nn.Module, optimizer: torch.optim.Optimizer, cadence: int, tmp: Path) -> Attached:
    """Cockpit's "economy" quantities on a `schedules.linear(N)` track schedule, BackPACK-extended
    model and loss, the backward pass inside `cockpit(step, info=...)` as its docs show; a model
    BackPACK cannot handle (see `backpack_unsupported`) is "unsupported".

    >>> attached = attach_cockpit(model, optimizer, 10, tmp)   # extends model with BackPACK
    >>> loss = attached.loss_backward(model(x), y)              # backward inside cockpit(step, info=...)
    """
    reason = backpack_unsupported(model)  # first: it holds whether or not cockpit itself imports
    if reason is not None:
        raise PeerUnavailable("unsupported", reason)
    cockpit = require("cockpit")
    configuration = require("cockpit.utils.configuration").configuration
    schedules = require("cockpit.utils.schedules")
    extend = require("backpack").extend
    extend(model)
    loss_fn = extend(nn.CrossEntropyLoss())
    individual = nn.CrossEntropyLoss(reduction="none")
    watcher = cockpit.Cockpit(list(model.parameters()),
                              quantities=configuration("economy", track_schedule=schedules.linear(cadence)))
    step = Every(1)  # a step counter: step.step is the global step

    def loss_backward(outputs: Tensor, targets: Tensor) -> Tensor:
        step()
        loss = loss_fn(outputs, targets)
        info = {"batch_size": len(targets), "individual_losses": individual(outputs, targets), "loss": loss,
                "optimizer": optimizer}
        with watcher(step.step, info=info):
            loss.backward(create_graph=watcher.create_graph(step.step))
        return loss

    return Attached(after_step=lambda loss: None, close=lambda: None, loss_backward=loss_backward)


PEERS: dict[str, Peer] = {peer.name: peer for peer in [
    Peer("plain", "nothing (plain against plain: the comparison's noise floor)", attach_plain, cadenced=False),
    Peer("gradient-doctor",
         "gd.watch(every=N, detail_every=N, update_every=N, activation_every=N), run.step(loss=loss) every step: "
         "per-layer gradient norms and non-finite counts, max |g|, zero fractions, weight norms, log10|g| "
         "histograms, update norms ‖Δw‖ (exact up to 4,096 entries per tensor, from a sample of 4,096 above) and "
         "activation statistics, all every N steps; kept on the device, written to the in-memory record every 100 steps",
         gd_attach(), "gradient-doctor"),
    Peer("wandb",
         'wandb.init(mode="offline"), run.watch(model, log="gradients", log_freq=N), run.log({"loss": '
         "loss.item()}) every step: a 64-bin histogram of each parameter's gradient every N backward passes, "
         "copied to the host in the backward hook, written to the offline run by wandb-core",
         attach_wandb, "wandb"),
    Peer("tensorboard",
         "SummaryWriter.add_histogram(name, param.grad, step) for each parameter every N steps: a histogram "
         "computed on the host (numpy), written to an event file by a background thread",
         attach_tensorboard, "tensorboard"),
    Peer("lightning-grad_norm",
         "lightning.pytorch.utilities.grad_norm(model, norm_type=2) every N steps: each parameter's gradient "
         "2-norm and the total, each turned into a float (.item(), as Lightning's loggers do)",
         attach_lightning, "lightning"),
    Peer("traintools",
         "traintools GradientHealthMonitor().inspect(model, step, lr) every N steps: per parameter the weight "
         "norm, gradient norm, NaN/Inf counts, max |g|, zero fraction and lr·‖g‖/‖w‖, each read with .item(), "
         "plus warnings",
         attach_traintools, "traintools"),
    Peer("cockpit-economy",
         'cockpit.Cockpit(params, quantities=configuration("economy", track_schedule=linear(N))) with BackPACK: '
         "Alpha, Distance, GradHist1d, GradNorm, InnerTest, Loss, NormTest, OrthoTest, UpdateSize every N steps "
         "(per-sample gradients through BackPACK on those steps)",
         attach_cockpit, "cockpit-for-pytorch"),
]}
