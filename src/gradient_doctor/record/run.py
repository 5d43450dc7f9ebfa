"""`Run`: one training run's record, live (from `gd.watch`) or loaded read-only (`gd.load`).

    >>> with gd.watch(model, optimizer=opt, log_dir="runs/a") as run:
    ...     for x, y in data:
    ...         opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()
    ...         run.step(loss=loss)
    >>> run.history("grad_norm").shape        # steps × layers, layers in forward order
    >>> gd.load("runs/a").history("loss")     # in another process, even while training goes on
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from ..errors import GradientDoctorError, InvalidType, InvalidValue, RunClosedError, UnknownName
from ..probe import LAYER_METRICS, PARAM_METRICS, Probe
from ..probe.metrics import INPUT_NONFINITE
from .histograms import GradientHistograms, encode, read
from .schema import HISTOGRAM_ENTITY, HISTOGRAM_METRIC
from .store import LayerInfo, RunStore


class Listener(Protocol):
    """A live view of a run (see `Run.add_listener`): `report.tensorboard.TensorBoardListener`, `report.live.LivePanel`."""

    def due(self) -> bool: ...
    def flushed(self, run: "RunRecord") -> None: ...
    def close(self, run: "RunRecord") -> None: ...

if TYPE_CHECKING:
    import pandas


@dataclass(frozen=True)
class Intervention:
    """One action of the in-loop guard (`gd.watch(..., guard=True)`) at an optimizer step.

    >>> run.interventions[0]
    Intervention(step=41, kind='skipped_update', detail={'nonfinite': 12.0})
    """

    step: int
    kind: str  # "skipped_update", "clipped_spike" or "rolled_back"
    detail: dict

    def __str__(self) -> str:
        told = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.detail.items())
        return f"step {self.step}: {self.kind.replace('_', ' ')}" + (f" ({told})" if told else "")


class RunRecord:
    """A run record with its reading API; a live run also holds the probe and takes `step()` calls."""

    def __init__(self, store: RunStore, probe: Probe | None = None, *, flush_every: int = 100):
        self._store = store
        self._probe = probe
        self._flush_every = flush_every
        self._scalars: list[tuple[int, str, Any]] = []
        self._interventions: list[tuple[int, str, dict]] = []  # the guard's, not yet written
        self._positions_written: list[int] | None = None
        self._flush_failed = False
        self._closed = probe is None
        # with an optimizer: the step count and forward count at the last run.step() call, and the
        # iterations since then that ended without an optimizer step (GradScaler skipped it)
        self._seen_step = probe.step if probe is not None else 0
        self._seen_forwards = 0
        self._skipped = 0
        self._warned_skip = False
        self._monitor = None  # live checks (diagnose.live.LiveMonitor), attached by gd.watch
        self._listeners: list = []  # live views (report.live, report.tensorboard), attached by gd.watch
        self._checked_at = self._seen_step
        if probe is not None:
            # flushing as the next optimizer step begins lets run.step(loss=...) land in the same flush
            probe.on_step_start = self._maybe_flush

    # -- live API --------------------------------------------------------------------------
    def step(self, loss: Any = None, **metrics: Any) -> None:
        """Attach the loss and metrics to the step just taken (with an optimizer), or mark a step.

        With an optimizer, `optimizer.step()` counts steps; call this after it. Without one, this
        call is the step: gradient statistics are taken now, so call it after `backward()` and
        before `zero_grad()`. Tensors stay on their device until the next flush (no sync).

        An iteration that ends without an optimizer step (`torch.amp.GradScaler` skips
        `optimizer.step()` when it finds inf/NaN gradients) is told apart by the model's forward
        pass since the last call: its metrics are attached to no step, and the next step records
        `skipped`, the number of such iterations just before it. Several calls after one optimizer
        step (no forward pass between them) all attach to that step.
        """
        probe = self._live_probe("step()")
        checked = _checked_metrics({"loss": loss} | metrics)  # all or nothing: a bad value attaches none
        if probe.optimizer is None:
            probe.mark_step()
        elif probe.step == self._seen_step and (probe.forwards != self._seen_forwards or probe.step == probe.first_step):
            self._count_skipped(probe)
            return
        elif probe.step != self._seen_step and self._skipped:
            checked["skipped"], self._skipped = float(self._skipped), 0
        self._seen_step, self._seen_forwards = probe.step, probe.forwards
        self._scalars += [(probe.step - 1, name, value) for name, value in checked.items()]
        if probe.optimizer is None:
            self._maybe_flush()

    def take_gradients(self) -> None:
        """Take the coming optimizer step's gradient statistics now, not in `optimizer.step()`'s pre-hook.

            >>> def on_before_optimizer_step(self, trainer, module, optimizer):   # a framework callback
            ...     run.take_gradients()          # the gradients this step will apply

        For frameworks that compute the gradients after `optimizer.step()`'s pre-hook and say when they are ready
        (Lightning calls `on_before_optimizer_step` inside its closure). A plain `optimizer.step(closure)`
        (LBFGS) needs no call: the step's statistics are taken right after the closure's first evaluation.
        From the first call on, the pre-hook leaves each step's start to this call; the step still completes
        in the post-hook. Needs a run watched with an optimizer.
        """
        probe = self._live_probe("take_gradients()")
        if probe.optimizer is None:
            raise GradientDoctorError(
                "run.take_gradients() needs a run watched with an optimizer (gd.watch(model, optimizer=opt)): it takes "
                "the gradients of the coming optimizer.step(). This run has none; call run.step() after backward()."
            )
        probe.external_step_start = True
        probe.before_optimizer_step()

    def mark_skipped(self) -> None:
        """An optimizer step was due but did not happen: the next step records `skipped` (one more).

            >>> scaler.step(optimizer); stepped or run.mark_skipped()   # GradScaler found inf/NaN

        For framework callbacks that know a step was due (Lightning's `on_before_optimizer_step`);
        plain loops need not call it: `run.step()` tells a skipped iteration by its forward pass.
        """
        probe = self._live_probe("mark_skipped()")
        self._skipped += 1
        self._seen_forwards = probe.forwards

    def _count_skipped(self, probe: Probe) -> None:
        self.mark_skipped()
        if not self._warned_skip:
            self._warned_skip = True
            warnings.warn(
                "gradient-doctor: run.step() came after a new forward pass but no optimizer.step(): counted "
                "as a skipped step (torch.amp.GradScaler skips optimizer.step() when it finds inf/NaN "
                "gradients). Its metrics are attached to no step; the next step records 'skipped'. If your "
                "loop calls run.step() before optimizer.step(), call it after. (Warned once per run.)",
                RuntimeWarning,
                stacklevel=3,
            )

    def flush(self) -> None:
        """Write the buffered steps to the record: one device→host transfer, one transaction."""
        if self._probe is None:
            return
        vectors, self._probe.completed = self._probe.completed, []
        scalars, self._scalars = self._scalars, []
        interventions, self._interventions = self._interventions, []
        if not vectors and not scalars and not interventions:
            return
        try:
            self._write(vectors, scalars, interventions)
        except BaseException:  # keep the steps for a later flush (close() retries)
            self._probe.completed[:0] = vectors
            self._scalars[:0] = scalars
            self._interventions[:0] = interventions
            raise
        self._tell_listeners("flushed")

    def note_intervention(self, step: int, kind: str, **detail: float | int | str) -> None:
        """Record an action the guard took at `step` (written with the next flush; host values only).

            >>> run.note_intervention(41, "skipped_update", nonfinite=12.0)
        """
        self._live_probe("note_intervention()")
        self._interventions.append((int(step), kind, detail))

    @property
    def interventions(self) -> list[Intervention]:
        """Every action of the in-loop guard, in step order (empty without `guard=True`)."""
        self._sync_for_read()
        return [Intervention(step, kind, detail) for step, kind, detail in self._store.interventions()]

    def _write(self, vectors: list, scalars: list[tuple[int, str, Any]],
               interventions: list[tuple[int, str, dict]] = ()) -> None:
        # the probe's count of inf/NaN input entries per step, a run-level series like the loss
        scalars = scalars + [(v.step, INPUT_NONFINITE, v.input_nonfinite) for v in vectors
                             if v.input_nonfinite is not None]
        tensors = [s for _, _, s in scalars if isinstance(s, torch.Tensor)]
        parts = [torch.stack([v.values for v in vectors]).flatten()] if vectors else []
        histograms = [v.histograms for v in vectors if v.histograms is not None]  # the detail steps'
        if histograms:
            parts.append(torch.stack(histograms).flatten())
        if tensors:
            device = parts[0].device if parts else tensors[0].device
            parts.append(torch.stack([t.to(device=device, dtype=torch.float64) for t in tensors]))
        host = torch.cat(parts).cpu().numpy() if parts else np.zeros(0)  # the one transfer
        width = self._probe.width
        end = len(vectors) * width + sum(h.numel() for h in histograms)
        host_histograms = iter(host[len(vectors) * width : end].reshape(len(histograms), -1) if histograms else ())
        blobs = []
        for i, vector in enumerate(vectors):
            blobs += self._blobs(vector.step, vector.groups, host[i * width : (i + 1) * width])
            if vector.histograms is not None:
                blobs.append((vector.step, HISTOGRAM_ENTITY, HISTOGRAM_METRIC, encode(next(host_histograms))))
        tensor_values = iter(host[end:])
        rows = [(s, n, float(next(tensor_values)) if isinstance(v, torch.Tensor) else float(v)) for s, n, v in scalars]
        positions = self._probe.forward_order if self._probe.call_order else None
        if positions == self._positions_written:
            positions = None
        self._store.write_flush(positions, [(v.step, v.time, v.groups) for v in vectors], blobs, rows, interventions)
        if positions is not None:
            self._positions_written = positions

    def _blobs(self, step: int, groups: tuple[str, ...], vector: np.ndarray) -> list:
        return [(step, entity, metric, values) for entity, metric, values in self._probe.split(vector, groups)]

    def close(self) -> None:
        """Flush, remove every hook, and keep the record readable. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._probe.detach()
            self.flush()
        finally:  # listeners close (their writers, threads, panels) even when the last flush failed
            self._tell_listeners("close")
            if self._store.path is not None and self._store.writable:
                self._store.close()
                self._store = RunStore.open_readonly(self._store.path)

    def __enter__(self) -> "RunRecord":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # the user's exception matters more than a failure to flush
            self.close()
        except Exception as err:
            warnings.warn(f"gradient-doctor: could not flush the run record on exit: {err}", RuntimeWarning)

    def _maybe_flush(self) -> None:
        check_due = self._monitor is not None and self._probe.step - self._checked_at >= self._monitor.check_every
        listener_due = any(listener.due() for listener in self._listeners)  # host-only (a clock), no sync
        if (len(self._probe.completed) < self._flush_every and not check_due and not listener_due) or self._flush_failed:
            return
        try:
            self.flush()
        except Exception as err:  # never crash training over the record
            self._flush_failed = True
            warnings.warn(
                f"gradient-doctor: could not write the run record ({err}); steps are kept in memory "
                "and written at close().",
                RuntimeWarning,
            )
            return
        if check_due:  # outside the try: TrainingStopped must reach the training loop
            self._checked_at = self._probe.step
            self._monitor.check(self)

    def attach_monitor(self, monitor) -> None:
        """Have `monitor.check(run)` called every `monitor.check_every` steps, after a flush (see diagnose.live)."""
        self._monitor = monitor

    def add_listener(self, listener: "Listener") -> None:
        """Have a live view follow the run, e.g. a TensorBoard writer:

            >>> run.add_listener(TensorBoardListener("tb/a"))   # gradient_doctor.report.tensorboard

        `listener.due()` is asked before each step's flush decision (host-only and cheap; True flushes now),
        `listener.flushed(run)` called after each flush that wrote steps, and `listener.close(run)` at close().
        A listener that raises is dropped with a warning: it never stops training."""
        self._listeners.append(listener)

    def _tell_listeners(self, method: str) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(self)
            except Exception as err:
                self._listeners.remove(listener)
                warnings.warn(f"gradient-doctor: {type(listener).__name__} failed and is switched off "
                              f"({type(err).__name__}: {err})", RuntimeWarning, stacklevel=3)

    def _live_probe(self, what: str) -> Probe:
        if self._closed or self._probe is None:
            raise RunClosedError(
                f"run.{what} was called on a closed run: the run ended with its `with` block or close(). "
                "Start a new gd.watch(...) (or pass resume=True with the same log_dir) to keep recording."
            )
        return self._probe

    # -- reading API -----------------------------------------------------------------------
    @property
    def log_dir(self) -> Path | None:
        return None if self._store.path is None else self._store.path.parent

    @property
    def layers(self) -> list[str]:
        """Layer names (module qualified names) in forward order."""
        self._sync_for_read()
        return [layer.name for layer in self._store.layers()]

    @property
    def layer_details(self) -> list[LayerInfo]:
        """Name, module type, activation and parameter count of each layer, in forward order."""
        self._sync_for_read()
        return self._store.layers()

    @property
    def params(self) -> list[str]:
        """Parameter tensor names (qualified, deduplicated) in registration order."""
        return [p.name for p in self._store.params()]

    @property
    def steps(self) -> np.ndarray:
        """Indices of the recorded steps (0-based optimizer steps), ascending."""
        self._sync_for_read()
        return self._store.steps()

    def steps_since(self, since: int | None) -> np.ndarray:
        """`run.steps` from `since` on (all when None): the rows of `history(..., since=since)`, read alone."""
        self._sync_for_read()
        return self._store.steps(since)

    @property
    def metrics(self) -> list[str]:
        """Every metric name `history()` accepts for this run."""
        self._sync_for_read()
        return list(LAYER_METRICS) + [n for n in self._store.scalar_names() if n not in LAYER_METRICS]

    def history(self, metric: str, layer: str | None = None, *, since: int | None = None) -> np.ndarray:
        """A metric over the recorded steps: steps × layers (forward order), or steps for one layer,
        one parameter tensor (``layer="fc1.weight"``) or a run-level metric such as ``loss``.
        NaN where a step did not measure the metric (``loss`` too, before any is recorded). `since`: only the
        steps ≥ it (rows as in `run.steps[run.steps >= since]`), read without touching the earlier ones."""
        self._sync_for_read()
        steps = self._store.steps(since)
        if metric == "loss" or metric in self._store.scalar_names() and metric not in LAYER_METRICS:
            if layer is not None:
                raise InvalidValue(f"{metric!r} is a run-level metric; it has no per-layer values (got layer={layer!r})")
            return _align(steps, *self._store.scalar(metric, since))
        if metric not in LAYER_METRICS:
            raise UnknownName(f"unknown metric {metric!r}; this run has: {', '.join(self.metrics)}")
        if layer is None:
            return self.layer_histories((metric,), since=since)[metric]
        return self._one_entity(steps, metric, layer, since)

    def layer_histories(self, metrics: tuple[str, ...] = LAYER_METRICS, *, since: int | None = None
                        ) -> dict[str, np.ndarray]:
        """`{metric: history(metric, since=since)}` of per-layer metrics, read together (one query).

            >>> run.layer_histories(("grad_norm", "update_norm"), since=100)["grad_norm"].shape   # steps × layers
        """
        unknown = [m for m in metrics if m not in LAYER_METRICS]
        if unknown:
            raise UnknownName(f"unknown per-layer metric {unknown[0]!r}; per-layer metrics: {', '.join(LAYER_METRICS)}")
        self._sync_for_read()
        steps, layers = self._store.steps(since), self._store.layers()
        order = [layer.idx for layer in layers]
        found = self._store.series_of("layer", tuple(metrics), len(layers), since)
        return {metric: _align(steps, at, values)[:, order] for metric, (at, values) in found.items()}

    def gradient_histograms(self, layer: str | None = None, *, since: int | None = None) -> GradientHistograms:
        """Histograms of log10 |g| over each layer's gradient entries, at the detail steps (every `detail_every`-th).

            >>> steps, edges, counts, zeros, nonfinite = run.gradient_histograms()  # counts: steps × layers × bins
            >>> run.gradient_histograms("fc1").counts                               # steps × bins

        Layers in forward order; `edges` (log10 |g|, bins + 1) are shared by all; exact zeros and non-finite
        entries are counted apart from the bins; NaN for a layer without a gradient. Counts are exact for parameters
        of up to 65,536 entries and estimated from a fixed systematic sample for larger ones (scaled to their size).
        See probe/histograms.py."""
        self._sync_for_read()
        layers = self._store.layers()
        if layer is None:
            return read(self._store, [info.idx for info in layers], since)
        found = [info.idx for info in layers if info.name == layer]
        if not found:
            raise UnknownName(f"no layer named {layer!r}; layers include {[info.name for info in layers][:8]}")
        steps, edges, counts, zeros, nonfinite = read(self._store, found, since)
        return GradientHistograms(steps, edges, counts[:, 0], zeros[:, 0], nonfinite[:, 0])

    def _one_entity(self, steps: np.ndarray, metric: str, name: str, since: int | None) -> np.ndarray:
        layers = {layer.name: layer.idx for layer in self._store.layers()}
        if name in layers:
            at, values = self._store.series("layer", metric, len(layers), since)
            return _align(steps, at, values)[:, layers[name]]
        params = {p.name: p.idx for p in self._store.params()}
        if name in params:
            if metric not in PARAM_METRICS:
                raise InvalidValue(f"{metric!r} is measured per layer, not per parameter tensor ({name!r})")
            at, values = self._store.series("param", metric, len(params), since)
            return _align(steps, at, values)[:, params[name]]
        known = list(layers)[:8]
        raise UnknownName(f"no layer or parameter named {name!r}; layers include {known}")

    def to_pandas(self) -> "pandas.DataFrame":
        """A long table: one row per (step, layer), a column per metric, run-level metrics repeated."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("Run.to_pandas() needs pandas: pip install 'gradient-doctor[pandas]'") from err
        steps, layers = self.steps, self.layers
        frame = pd.DataFrame({"step": np.repeat(steps, len(layers)), "layer": np.tile(layers, len(steps))})
        for metric in LAYER_METRICS:
            frame[metric] = self.history(metric).reshape(-1)
        for name in self._store.scalar_names():
            if name not in LAYER_METRICS:
                frame[name] = np.repeat(self.history(name), len(layers))
        return frame

    def __repr__(self) -> str:
        state = "starting" if self._store.starting else "live" if not self._closed else "closed"
        where = self.log_dir or "memory"
        return f"Run({where}, {len(self.steps)} steps, {len(self.layers)} layers, {state})"

    def _sync_for_read(self) -> None:
        if not self._closed and self._probe is not None:
            self.flush()


#: run-level series the record writes itself: run.step() may not give a metric one of these names (nor a per-layer one)
RESERVED = ("skipped", INPUT_NONFINITE)


def _checked_metrics(values: dict[str, Any]) -> dict[str, Any]:
    """The metrics given to run.step(), scalar tensors detached (still on their device), None dropped."""
    checked = {}
    for name, value in values.items():
        if name in LAYER_METRICS or name in RESERVED:
            kind = "a per-layer metric" if name in LAYER_METRICS else "a series the record keeps itself"
            raise InvalidValue(f"run.step: a metric may not be named {name!r}, the name of {kind}; "
                               f"rename it (e.g. 'my_{name}')")
        if value is None:
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise InvalidValue(f"run.step: metric {name!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
            value = value.detach().reshape(())
        elif not isinstance(value, (int, float)):
            raise InvalidType(f"run.step: metric {name!r} must be a number or a scalar tensor, got {type(value).__name__}")
        checked[name] = value
    return checked


def _align(steps: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of `values` (recorded at steps `at`) placed on the full `steps` axis (ascending, unique), NaN elsewhere.

        >>> _align(np.array([0, 10, 20]), np.array([10, 15]), np.array([1.0, 2.0]))
        array([nan,  1., nan])
    """
    out = np.full((len(steps),) + values.shape[1:], np.nan)
    index = np.searchsorted(steps, at)
    known = index < len(steps)
    known[known] = steps[index[known]] == at[known]  # `at` in `steps`, without np.isin's sort
    out[index[known]] = values[known]
    return out
