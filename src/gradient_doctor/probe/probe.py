"""The probe: hooks on a model (and optimizer) that turn each training step into one device vector.

    >>> probe = Probe(model, optimizer, cadence=Cadence())
    >>> probe.attach()
    >>> ...  # forward, backward, optimizer.step()
    >>> probe.completed  # [StepVector(step=0, groups=('gradient', 'update', 'activation'), values=tensor)]
    >>> probe.detach()

A step's vector is float64 on the model's device: the per-layer block (LAYER_METRICS × layers) and
then the per-parameter block (PARAM_METRICS × parameters), row-major, NaN where not measured.
Nothing is read back to the host here; that is the record's job, once per flush. On the CPU, where reading is a
memory read, the vector is a tensor over a numpy buffer whose rows are written without a kernel each.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DistributedProbeError
from .activations import ActivationProbe
from .distributed import across_ranks, distributed
from .gradients import UpdateTracker, gradient_blocks, weight_norms
from .histograms import gradient_histograms
from .hooks import Hooks
from .layers import SATURATION_EPS, discover, is_compiled
from .metrics import GROUPS, LAYER_METRICS, PARAM_METRICS
from .rollup import Rollup
from .sharded import Shards, any_sharded
from .tensor_stats import (
    MAX_ABS,
    NONFINITE,
    NONZERO,
    SUM_OF_SQUARES,
    count_nonfinite,
    nonfinite_on_host,
    use_fast_path,
)
from .time import TimeProbe

# rows of a step's blocks (see metrics.py): the gradient block's four rows land in two groups
_NORM_ROWS = slice(LAYER_METRICS.index("grad_norm"), LAYER_METRICS.index("nonfinite") + 1)
_DETAIL_ROWS = slice(LAYER_METRICS.index("grad_max"), LAYER_METRICS.index("grad_zero_frac") + 1)
_WEIGHT_ROW = LAYER_METRICS.index("weight_norm")
_UPDATE_ROW = LAYER_METRICS.index("update_norm")
_ACTIVATION_ROWS = slice(LAYER_METRICS.index("act_mean"), LAYER_METRICS.index("dead_frac") + 1)
_TIME_ROW = LAYER_METRICS.index("time_ratio")



@dataclass(frozen=True)
class Cadence:
    """On which steps each group is measured: step k when k % period == 0 (0 turns a group off).

    Defaults: gradient norms and non-finite counts every step (one pass over each gradient);
    max |g|, zero fractions and weight norms, updates and activations every 50th step (three more
    passes over the gradients and one over the weights; up to 4,096 entries of each parameter kept
    across the optimizer step; a pass over every activation output).
    """

    every: int = 1
    detail_every: int = 50
    update_every: int = 50
    activation_every: int = 50

    def groups(self, step: int) -> tuple[str, ...]:
        due = (
            ("gradient", self.every), ("detail", self.detail_every),
            ("update", self.update_every), ("activation", self.activation_every),
        )
        return tuple(name for name, period in due if period and step % period == 0)


@dataclass
class StepVector:
    step: int
    time: float  # host wall-clock time when the step completed
    groups: tuple[str, ...]
    values: Tensor  # float64, LAYER_METRICS × layers then PARAM_METRICS × params
    histograms: Tensor | None = None  # detail steps: float64 layers × (zeros, non-finite, bins), see histograms.py
    input_nonfinite: Tensor | float | None = None  # inf/NaN entries in the model's floating-point inputs since the last
    # step (a host float when the model and its inputs are on the CPU)


class Probe:
    """Measures one model's steps; `completed` collects the StepVectors until the owner takes them."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        cadence: Cadence = Cadence(),
        activations: bool = True,
        saturation_eps: float = SATURATION_EPS,
        first_step: int = 0,
    ):
        self.model = model
        self.optimizer = optimizer
        self.cadence = cadence
        self.layers, self.params = discover(model)
        # a compiled model: no hook inside its graph (they would break or recompile it), see docs/integrations.md
        self.compiled = is_compiled(model)
        if self.compiled and activations:
            activations = False
            warnings.warn(
                "gradient-doctor: the model is torch.compile'd: activation statistics are not measured (forward "
                "hooks inside a compiled graph break it). Gradient, weight and update statistics are, from the "
                "optimizer's hooks outside the graph. Pass activations=False to silence this warning.",
                RuntimeWarning, stacklevel=3,
            )
        self.tensors = [p.tensor for p in self.params]
        self.device = self.tensors[0].device if self.tensors else torch.device("cpu")
        self.numel = torch.tensor([float(t.numel()) for t in self.tensors], dtype=torch.float64, device=self.device)
        pairs = [(pi, li) for li, layer in enumerate(self.layers) for pi in layer.params]
        self.rollup = Rollup(pairs, len(self.layers), self.device)
        in_optimizer = _optimizer_param_ids(optimizer)
        tracked = [i for i, t in enumerate(self.tensors) if id(t) in in_optimizer]
        # FSDP2 / DTensor: statistics of local shards, summed over ranks (see sharded.py)
        self.shards = Shards(self.tensors) if any_sharded(self.tensors) else None
        self.updates = UpdateTracker(lambda: self._local, tracked, self.rollup, self._sum_squares)
        self.activations = ActivationProbe(self.layers, saturation_eps) if activations else None
        if self.activations is not None and distributed():  # every rank measures the same steps
            self.activations.across_ranks = across_ranks
        time = TimeProbe(self.layers) if activations else None
        self.time = time if time is not None and time.recurrent else None  # only models with RNN/LSTM/GRU
        for armed in (self.activations, self.time):
            if armed is not None:
                armed.on_error = self._forward_failed
        self._width = len(LAYER_METRICS) * len(self.layers) + len(PARAM_METRICS) * len(self.params)
        self.first_step = first_step
        self.step = first_step
        self.completed: list[StepVector] = []
        self.call_order: list[int] = []  # layer indices in first-call order
        self.forwards = 0  # grad-enabled forward passes of the whole model (tells iterations apart)
        self.disabled = False
        self.on_step_start = None  # called with no arguments as each optimizer step begins
        self.on_gradients = None  # called with no arguments once the step's gradient statistics are taken
        #: True once the owner calls before_optimizer_step() itself (a framework hook after backward):
        #: optimizer.step()'s pre-hook then leaves the step's start to it
        self.external_step_start = False
        self._step_hooks = _StepHooks(self)
        self._order_hooks = _OrderHooks(self)
        self._gradient_rows: tuple[Tensor, Tensor] | None = None
        self._histograms: Tensor | None = None
        self._bad_inputs: Tensor | float | None = None  # count of inf/NaN input entries since the last step
        self._on_host = self.device.type == "cpu"  # a step's vector is assembled in numpy (no kernel per row)
        self._groups_at: tuple[int, tuple[str, ...]] = (-1, ())  # the cadence's groups of the last step asked

    # -- the step vector's layout ---------------------------------------------------------
    @property
    def width(self) -> int:
        """Entries in one step's vector: LAYER_METRICS × layers, then PARAM_METRICS × params."""
        return self._width

    def split(self, vector: np.ndarray, groups: tuple[str, ...]) -> list[tuple[str, str, np.ndarray]]:
        """A step's vector, back on the host, as (entity "layer" or "param", metric, one value per layer or
        parameter tensor) for every metric of the measured `groups`."""
        n_layers, n_params = len(self.layers), len(self.params)
        layer_block = vector[: len(LAYER_METRICS) * n_layers].reshape(len(LAYER_METRICS), n_layers)
        param_block = vector[len(LAYER_METRICS) * n_layers :].reshape(len(PARAM_METRICS), n_params)
        measured = {m for g in groups for m in GROUPS[g]}
        out = [("layer", m, layer_block[i]) for i, m in enumerate(LAYER_METRICS) if m in measured]
        out += [("param", m, param_block[i]) for i, m in enumerate(PARAM_METRICS) if m in measured]
        return out

    # -- lifecycle -------------------------------------------------------------------------
    def attach(self) -> None:
        """Register every hook; `detach()` removes them all."""
        if not self.compiled:  # compiled: registration order stands for the forward order
            self._order_hooks.arm()
        self._step_hooks.arm()
        self._arm_activations()

    def detach(self) -> None:
        self._step_hooks.disarm()
        self._order_hooks.disarm()
        self.updates.discard()
        for probe in (self.activations, self.time):
            if probe is not None:
                probe.disarm()

    @property
    def forward_order(self) -> list[int]:
        """Layer indices in forward (first-call) order; layers never called follow in registration order."""
        seen = set(self.call_order)
        return self.call_order + [i for i in range(len(self.layers)) if i not in seen]

    # -- steps -----------------------------------------------------------------------------
    def before_optimizer_step(self) -> None:
        """Optimizer step pre-hook: gradient statistics, and the kept parameter entries on update steps."""
        if self.on_step_start is not None:
            self.on_step_start()
        self._guard(self._before_step)
        if self.on_gradients is not None:  # the in-loop guard (treat/guard.py): may clip or drop the gradients
            self.on_gradients()

    def _step_pre_hook(self, optimizer, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if self.external_step_start:
            return None
        closure = args[1] if len(args) > 1 else kwargs.get("closure")  # args[0] is the optimizer
        if closure is None:
            self.before_optimizer_step()
            return None
        # optimizer.step(closure) (LBFGS, or any optimizer given one): the gradients are computed inside the
        # closure, so the step starts right after its first evaluation, at the weights the step starts from
        measured = self._start_after(closure)
        return ((args[0], measured, *args[2:]), kwargs) if len(args) > 1 else (args, kwargs | {"closure": measured})

    def _start_after(self, closure):
        """`closure`, which begins the step (`before_optimizer_step`) after its first call returns."""
        started = False

        def measured(*args, **kwargs):
            nonlocal started
            loss = closure(*args, **kwargs)
            if not started and not self.external_step_start:
                started = True
                self.before_optimizer_step()
            return loss

        return measured

    def after_optimizer_step(self) -> None:
        """Optimizer step post-hook: update norms, weight norms, activations; completes the step."""
        self._complete()

    def mark_step(self) -> None:
        """A step without an optimizer: everything measured now; updates are not measured."""
        self._guard(self._before_step, with_updates=False)
        self._complete()

    def _complete(self) -> None:
        self._guard(self._finish_step)
        if self.disabled:  # switched off (now or earlier): the step and its loss are still recorded, unmeasured
            values = torch.full((self._width,), float("nan"), dtype=torch.float64, device=self.device)
            self.completed.append(StepVector(self.step, time.time(), (), values))
        self.step += 1  # steps are counted even when the probe has switched itself off
        self._arm_activations()

    def _groups(self) -> tuple[str, ...]:
        """`cadence.groups(self.step)`, worked out once per step (asked before, after and between steps)."""
        if self._groups_at[0] != self.step:
            self._groups_at = (self.step, self.cadence.groups(self.step))
        return self._groups_at[1]

    def _before_step(self, with_updates: bool = True) -> None:
        groups = self._groups()
        if "gradient" in groups or "detail" in groups:
            grads = self.tensors if self.shards is None else self.shards.grads
            reduce = None if self.shards is None else self._reduce_grad_stats
            self._gradient_rows = gradient_blocks(grads, self.rollup, self.numel, detail="detail" in groups, reduce=reduce)
            if "detail" in groups:
                self._histograms = gradient_histograms([p.grad for p in grads], self.rollup, reduce=self._sum_squares)
        if with_updates and "update" in groups:
            self.updates.snapshot()

    def _finish_step(self) -> None:
        groups = self._groups()
        n_layers, n_params = len(self.layers), len(self.params)
        if self._on_host:  # a numpy buffer under the step's tensor: each row is written without a kernel
            buffer = np.full(self._width, np.nan)
            values, rows = torch.from_numpy(buffer), _numpy_rows
        else:
            buffer = values = torch.full((self._width,), float("nan"), dtype=torch.float64, device=self.device)
            rows = _tensor_rows
        layer_rows = buffer[: len(LAYER_METRICS) * n_layers].reshape(len(LAYER_METRICS), n_layers)
        param_rows = buffer[len(LAYER_METRICS) * n_layers :].reshape(len(PARAM_METRICS), n_params)
        measured = []
        if self._gradient_rows is not None:
            layer_block, param_block = rows(*self._gradient_rows)
            self._gradient_rows = None
            if "gradient" in groups:
                layer_rows[_NORM_ROWS], param_rows[_NORM_ROWS] = layer_block[:2], param_block[:2]
                measured.append("gradient")
            if "detail" in groups:
                layer_rows[_DETAIL_ROWS], param_rows[_DETAIL_ROWS] = layer_block[2:], param_block[2:]
                # taken after the optimizer step: the weights the step leaves behind
                layer_rows[_WEIGHT_ROW], param_rows[_WEIGHT_ROW] = rows(
                    *weight_norms(self._local, self.rollup, reduce=self._sum_squares))
                measured.append("detail")
        if self.updates.pending:
            layer_rows[_UPDATE_ROW], param_rows[_UPDATE_ROW] = rows(*self.updates.measure())
            measured.append("update")
        if "activation" in groups and self.activations is not None and not self.disabled:
            layer_rows[_ACTIVATION_ROWS] = rows(self.activations.collect())[0]
            if self.time is not None:
                layer_rows[_TIME_ROW] = rows(self.time.collect())[0]
            measured.append("activation")
        if self._order_hooks.active and self.call_order:  # the order is known after the first step
            self._order_hooks.disarm()
        histograms, self._histograms = self._histograms, None
        bad_inputs, self._bad_inputs = self._bad_inputs, None
        self.completed.append(StepVector(self.step, time.time(), tuple(measured), values,
                                         histograms if "detail" in measured else None, bad_inputs))

    def gradient_totals(self) -> tuple[float, float]:
        """(sum of squares of every gradient entry, count of non-finite entries) of the coming step, read to the
        host (one read: a sync on accelerators): from the step's statistics when this step measured them, else one
        pass now.

            >>> squares, nonfinite = probe.gradient_totals()
        """
        if self._gradient_rows is not None:
            per_param = self._gradient_rows[1]
        else:
            grads = self.tensors if self.shards is None else self.shards.grads
            reduce = None if self.shards is None else self._reduce_grad_stats
            per_param = gradient_blocks(grads, self.rollup, self.numel, detail=False, reduce=reduce)[1]
        if per_param.device.type == "cpu":  # counts are whole numbers: their float sum is exact in any order
            counts = [n for n in per_param[1].tolist() if n == n]  # NaN (no gradient) left out, as by nansum
            return per_param[0].square().nansum().item(), float(sum(counts))
        squares, nonfinite = torch.stack([per_param[0].square().nansum(), per_param[1].nansum()]).tolist()
        return squares, nonfinite

    @property
    def _local(self) -> list[Tensor]:
        """The parameters, or under FSDP2 their local shards as they are now."""
        return self.tensors if self.shards is None else self.shards.local

    @property
    def _sum_squares(self):
        return None if self.shards is None else self.shards.sum_squares

    def _reduce_grad_stats(self, stats: Tensor, detail: bool) -> Tensor:
        return self.shards.reduce_stats(stats, [SUM_OF_SQUARES, NONZERO, NONFINITE], MAX_ABS if detail else None)

    def _arm_activations(self) -> None:
        """Hooks on for a step that measures activations, off (no cost) for the others."""
        if self.activations is None or self.disabled:
            return
        due = "activation" in self._groups()
        for probe in (self.activations, self.time):
            if probe is not None and (due or probe.active):
                (probe.arm if due else probe.disarm)()

    def _count_forward(self, module, inputs) -> None:
        if torch.is_grad_enabled():
            self.forwards += 1
            if not self.compiled:  # a compiled module's hooks are traced into its graph
                self._guard(self._count_bad_inputs, inputs)

    def _count_bad_inputs(self, inputs: tuple) -> None:
        """Add the inf/NaN entries of the forward pass's floating-point tensor arguments to an on-device count (no
        host sync): a NaN in the data shows here before it reaches any layer."""
        floats = [x for x in inputs if isinstance(x, Tensor) and x.is_floating_point()]
        if floats:
            if self._on_host and use_fast_path(floats, None):  # a host float: no tensor made per forward pass
                total = nonfinite_on_host(floats)
            else:
                total = count_nonfinite(floats).to(self.device)
            self._bad_inputs = total if self._bad_inputs is None else self._bad_inputs + total

    # -- forward order ---------------------------------------------------------------------
    def _order_hook(self, index: int):
        def hook(module, inputs):
            if index not in self.call_order:
                self.call_order.append(index)

        return hook

    # -- never crash training --------------------------------------------------------------
    def _guard(self, fn, *args, **kwargs) -> None:
        if self.disabled:
            return
        try:
            fn(*args, **kwargs)
        except Exception as err:
            self._fail(err)

    def _forward_failed(self, err: Exception) -> None:
        """A forward hook (activation or time statistics) failed: those stop, NaN from now on; gradient, weight and
        update statistics go on. In a distributed run the whole probe stops instead (see `_fail`)."""
        if distributed():
            self._fail(err)
            return
        for probe in (self.activations, self.time):
            if probe is not None:
                probe.disarm()
        self.activations = self.time = None
        warnings.warn(
            f"gradient-doctor: activation statistics hit an internal error and are switched off (NaN from step "
            f"{self.step} on); gradients, weights and updates are still recorded. Error: {type(err).__name__}: {err}",
            RuntimeWarning,
            stacklevel=3,
        )

    def _fail(self, err: Exception) -> None:
        if self.disabled:
            return
        self.disabled = True
        self.updates.discard()
        for probe in (self.activations, self.time):
            if probe is not None:
                probe.disarm()
        if distributed():  # switched off here, this rank would skip the collectives the others wait in
            raise DistributedProbeError(
                f"gradient-doctor: the probe hit an internal error on rank {torch.distributed.get_rank()} at step "
                f"{self.step} of a distributed run. It cannot switch itself off on one rank only (the other ranks "
                f"would wait for it forever in the probe's collectives), so this rank stops. Error: "
                f"{type(err).__name__}: {err}"
            ) from err
        warnings.warn(
            f"gradient-doctor: the probe hit an internal error and switched itself off; "
            f"training goes on unwatched. Error: {type(err).__name__}: {err}",
            RuntimeWarning,
            stacklevel=3,
        )


def _numpy_rows(*blocks: Tensor) -> list[np.ndarray]:
    """Blocks to write into a step's numpy buffer (CPU tensors: views, no copy, and no `.cpu()` call)."""
    return [block.numpy() if block.is_cpu else block.cpu().numpy() for block in blocks]


def _tensor_rows(*blocks: Tensor) -> tuple[Tensor, ...]:
    """Blocks to write into a step's device tensor, as they are."""
    return blocks


def _optimizer_param_ids(optimizer: torch.optim.Optimizer | None) -> set[int]:
    if optimizer is None:
        return set()
    return {id(p) for group in optimizer.param_groups for p in group["params"]}


class _StepHooks(Hooks):
    """The probe's hooks for its whole life: the model's forward passes, and the optimizer's steps."""

    def __init__(self, probe: Probe):
        super().__init__()
        self.probe = probe

    def _register(self, handles: list) -> None:
        probe = self.probe
        handles.append(probe.model.register_forward_pre_hook(probe._count_forward))
        if probe.optimizer is not None:
            handles.append(probe.optimizer.register_step_pre_hook(probe._step_pre_hook))
            handles.append(probe.optimizer.register_step_post_hook(lambda *_: probe.after_optimizer_step()))


class _OrderHooks(Hooks):
    """Forward pre-hooks that note the layers' first-call order; removed once the order is known."""

    def __init__(self, probe: Probe):
        super().__init__()
        self.probe = probe

    def _register(self, handles: list) -> None:
        for i, layer in enumerate(self.probe.layers):
            handles.append(layer.module.register_forward_pre_hook(self.probe._order_hook(i)))
