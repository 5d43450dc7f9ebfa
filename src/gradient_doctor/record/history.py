"""What the run rules read: a window of a run's record as plain numpy arrays, steps × layers in forward order.

    >>> h = read_history(run, window=200)          # the last 200 steps; window=None: the whole run
    >>> h.values["grad_norm"].shape, h.layers[:2]
    ((200, 7), ['0', '1'])
    >>> h.trainable()                              # weight layers that got gradients and updates
    [0, 2, 4, 6]

Reading goes through the public `Run` API only (`layer_details`, `steps`, `history`), so a live run and
`gd.load(log_dir)` of the same record give the same History, and the same diagnosis.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidValue
from ..probe.metrics import INPUT_NONFINITE, LAYER_METRICS

if TYPE_CHECKING:
    from . import RunRecord

#: How many of the run's first finite losses make its starting level (their median): enough to outvote one odd
#: batch, few enough to stay at the start of a short run.
START_POINTS = 5
#: float32's machine epsilon: a step smaller than this relative to the weights rounds off (most of) their entries.
ROUNDING = 2.0 ** -23
#: Recurrent layers whose hidden states get activation statistics (probe.layers.activation_spec).
_RECURRENT = ("RNN", "SimpleRNN", "GRU", "LSTM")


@dataclass(frozen=True)
class History:
    """A window of a run's record. NaN means not measured on that step, or not applicable to that layer."""

    layers: list[str]  # module qualified names, forward order
    numel: np.ndarray  # entries of each layer's own parameters (0 for activation modules)
    steps: np.ndarray  # the recorded steps in the window, ascending
    values: dict[str, np.ndarray]  # per-layer metric -> steps × layers
    loss: np.ndarray  # per step; all NaN when the run recorded no loss
    loss_at_start: float  # median of the run's first START_POINTS finite losses (before the window too)
    kinds: list[str] = field(default_factory=list)  # module class names, forward order ("" when unknown)
    skipped: np.ndarray | None = None  # per step: iterations skipped just before it (GradScaler); None: not recorded
    input_nonfinite: np.ndarray | None = None  # per step: inf/NaN entries in the model's inputs; None: not recorded
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # see `memo`

    def sparse_gradient(self) -> list[int]:
        """Indices of the lookup layers (nn.Embedding, nn.EmbeddingBag and their subclasses, by class name): a step's
        gradient reaches only the rows of the tokens in its batch, so their gradient RMS per entry is naturally far
        below a dense layer's.

        >>> [h.layers[i] for i in h.sparse_gradient()]
        ['encoder']
        """
        return [i for i, kind in enumerate(self.kinds) if "Embedding" in kind]

    def trainable(self) -> list[int]:
        """Indices of the weight layers that trained in the window: a layer with no gradient on any step (frozen
        with requires_grad=False, or unused), with no update while other layers' updates are recorded (left out
        of the optimizer), or with zero updates despite a non-zero gradient (learning rate 0) is frozen. Zero
        updates are not a learning rate of 0 when the others' step sizes, applied to this layer's gradient, would
        round off in float32: a vanished gradient, and the layer stays in (`_rounds_to_nothing`)."""
        return list(self.memo("trainable", self._find_trainable))

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, worked out once per History (its arrays are not changed after it is read), for what several
        rules of one diagnosis ask: `h.memo("loss_trend", lambda: trend(h))`. Hand out only immutable values (or
        copies)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def _find_trainable(self) -> list[int]:
        grad, update = self.values["grad_norm"], self.values["update_norm"]
        updates_recorded = np.isfinite(update).any()
        rounds_off = self._rounds_to_nothing()
        out = []
        for i in np.flatnonzero(self.numel > 0):
            g, u = grad[:, i][np.isfinite(grad[:, i])], update[:, i][np.isfinite(update[:, i])]
            if not g.size or (updates_recorded and not u.size):
                continue
            if u.size and not (u > 0).any() and (g > 0).any() and i not in rounds_off:
                continue
            out.append(int(i))
        return out

    def _rounds_to_nothing(self) -> set[int]:
        """Layers that never moved although the steps the others take, scaled to their gradient, would be below
        float32 resolution: the largest step per unit of gradient among the moving layers (median ‖Δw‖/‖g‖; the
        learning rate under SGD) times the layer's median ‖g‖/‖w‖ is below 2^-23 (ROUNDING). Their zero updates
        are a vanished gradient rounding off, not a learning rate of 0."""
        grad, update = self.values["grad_norm"], self.values["update_norm"]
        with np.errstate(divide="ignore", invalid="ignore"):
            step_per_grad = column_medians(update / grad)
            relative_grad = column_medians(grad / self.values["weight_norm"])
        moved = (update > 0).any(axis=0)
        largest_step = step_per_grad[moved & np.isfinite(step_per_grad)]
        if not largest_step.size:
            return set()
        still = (self.numel > 0) & ~moved & np.isfinite(update).any(axis=0)
        return {int(i) for i in np.flatnonzero(still & (largest_step.max() * relative_grad < ROUNDING))}

    def activation_family(self) -> str:
        """The dominant family of the recorded activation layers: "saturating" (a saturated fraction applies),
        "rectifier" (ReLU-like and smooth non-saturating ones, which He init suits) or "unknown" (none recorded).
        Activation layers are those with activation statistics: activation modules, and weight layers that apply
        their activation themselves (Keras `Dense(activation=...)`), but not recurrent layers (their outputs are
        hidden states)."""
        recurrent = np.array([kind in _RECURRENT for kind in self.kinds] or [False] * len(self.layers))
        measured = np.isfinite(self.values["act_std"]).any(axis=0) & ~recurrent
        saturating = int((measured & np.isfinite(self.values["saturated_frac"]).any(axis=0)).sum())
        if not measured.any():
            return "unknown"
        return "saturating" if saturating > measured.sum() - saturating else "rectifier"

    def nonfinite_gradients(self) -> np.ndarray:
        """Steps × layers: the gradient had inf/NaN entries (`nonfinite` > 0) or an infinite norm."""
        with np.errstate(invalid="ignore"):
            return (self.values["nonfinite"] > 0) | np.isinf(self.values["grad_norm"])

    def nonfinite_activations(self) -> np.ndarray:
        """Steps × layers: an activation's output spread is infinite, or NaN on a step where its count-based
        fractions (saturated, zero) were taken — NaN alone also means "not measured"."""
        spread, v = self.values["act_std"], self.values
        counted = np.isfinite(v["saturated_frac"]) | np.isfinite(v["zero_frac"])
        return np.isinf(spread) | (np.isnan(spread) & counted)

    def median_relative_update(self) -> np.ndarray:
        """Per layer, the median of its finite ‖Δw‖/‖w‖ over the window (NaN where none), worked out once (read-only).

            >>> h.median_relative_update()[h.trainable()]
            array([0.0011, 0.0009, 0.0012])
        """
        return self.memo("median_relative_update", lambda: _read_only(column_medians(self.relative_update())))

    def relative_update(self) -> np.ndarray:
        """‖Δw‖/‖w‖ per step and layer (steps × layers), NaN where either was not measured or ‖w‖ = 0."""
        weight = self.values["weight_norm"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(weight > 0, self.values["update_norm"] / weight, np.nan)


def read_history(run: "RunRecord", window: int | None = None) -> History:
    """The last `window` steps of `run` (all of them when None), e.g. `read_history(gd.load("runs/a"), 500)`."""
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise InvalidValue(f"window must be a positive number of steps or None, got {window!r}")
    details = run.layer_details
    steps = run.steps
    since = None if window is None or not len(steps) else int(steps[-1]) - window + 1
    keep = steps >= (since if since is not None else -1)
    metrics = run.metrics
    loss = run.history("loss") if "loss" in metrics else np.full(len(steps), np.nan)
    finite_loss = loss[np.isfinite(loss)]
    skipped = np.nan_to_num(run.history("skipped", since=since)) if "skipped" in metrics else None
    bad_inputs = run.history(INPUT_NONFINITE, since=since) if INPUT_NONFINITE in metrics else None
    return History(
        layers=[layer.name for layer in details],
        numel=np.array([layer.numel for layer in details], dtype=np.int64),
        steps=steps[keep],
        values=run.layer_histories(LAYER_METRICS, since=since),  # the window's rows only, in one read
        loss=loss[keep],
        loss_at_start=finite_median(finite_loss[:START_POINTS]) if finite_loss.size else float("nan"),
        kinds=[layer.kind for layer in details],
        skipped=skipped,
        input_nonfinite=bad_inputs,
    )


def column_medians(values: np.ndarray) -> np.ndarray:
    """The median of each column's finite values, NaN for a column without one: `finite_median` of each column's
    finite values, to the bit (float64; only a zero median's sign may differ where -0.0 and 0.0 both occur: sort and
    partition order them apart), from one sort of the whole array instead of a median per column.

        >>> column_medians(np.array([[1.0, np.nan], [4.0, np.inf], [2.0, np.nan], [3.0, 5.0]]))
        array([2.5, 5. ])
    """
    if not values.shape[0]:
        return np.full(values.shape[1], np.nan)
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    ordered = np.sort(np.where(finite, values, np.nan), axis=0)  # each column's finite values first, NaN after
    columns = np.arange(values.shape[1])
    # the two middle ranks (the same one for an odd count); a column without finite values reads NaN at rank -1
    low, high = ordered[(count - 1) // 2, columns], ordered[count // 2, columns]
    with np.errstate(over="ignore", invalid="ignore"):  # the odd counts' unused sums
        return np.where(count % 2 == 1, high, (low + high) / 2)


def _read_only(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values


def finite_median(values: np.ndarray) -> float:
    """`np.median` of a non-empty 1-D array without NaN, to the bit: the middle value, or the mean of the two middle
    values as np.median takes it ((a + b) / 2), without np.median's checks and dispatch (a few µs a call instead of
    some 25: the run rules take dozens of medians per diagnosis).

        >>> finite_median(np.array([4.0, 1.0, 3.0, 2.0]))
        2.5
    """
    half = values.size // 2
    if values.size % 2:
        return float(np.partition(values, half)[half])
    middle = np.partition(values, (half - 1, half))
    return float((middle[half - 1] + middle[half]) / 2)
