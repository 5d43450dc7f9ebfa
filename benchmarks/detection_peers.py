"""The peers of the detection benchmark, applied to the numbers `gd.watch` recorded: AUTOTRAINER's gradient rules and
the fixed-threshold rule of PyPI gradient monitors.

    >>> record = GradientRecord.from_run(run, model)       # after the watched run, on its record alone
    >>> autotrainer(record), fixed_threshold(record)       # kind -> first step it fired
    ({'vanishing': 0}, {'vanishing': 0})

Both rules are applied at every recorded step; a kind's step is the first (0-based) optimizer step whose gradients
fired it, i.e. it was known before that step's update, as `checkup` (step 0) is.

AUTOTRAINER (Zhang et al., ICSE 2021), as in its published monitor (`AutoTrainer/utils/monitor.py`,
`gradient_issue` with the default parameters beta_1 = 1e-3, beta_2 = 1e-4, beta_3 = 70, gamma = 0.7):

* G = ‖∂L/∂W‖ of each kernel (weight tensor), first and last in model order; vanishing: G_first/G_last < 1e-3
  and G_first < 1e-4; exploding: G_first/G_last > 70 (numpy division: G_last = 0 gives inf, which explodes);
* any NaN/Inf in the gradients, the loss or the weights, or a loss >= 1e5 (its `nan_gradient`, `nan_loss` -- which
  also fires on a loss that large -- and `nan_weight`, all of which it reports as "explode"): kind `non_finite`
  here, so that it can be scored against that label too;
* dying ReLU: the share of exactly-zero entries over ALL gradient entries of the model (kernels and biases
  pooled: `gradient_zero_radio`'s `total_ratio`) >= 0.7, not a per-layer share.

Its issue decision also gates vanish/explode/relu on accuracy staying below a target (`not_converge`) and picks one
issue by priority (relu > explode > vanish); neither is applied here: the symptoms are scored as reported, which
can only raise its recall. Only trainable parameters count (it differentiates the trainable weights).

Fixed threshold: any layer's gradient norm (all of its parameters together, as recorded per layer) below 1e-7 is
vanishing, above 100 exploding; layers without a gradient (frozen, parameter-free) are skipped, NaN compares
false. Zero fractions are recorded at the detail cadence only (the benchmark sets it for every tool alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

#: AUTOTRAINER's `nan_loss` also fires on a finite loss this large.
LOSS_LIMIT = 1e5

# AUTOTRAINER's published defaults (beta_1, beta_2, beta_3, gamma)
AT_VANISH_RATIO, AT_VANISH_FIRST, AT_EXPLODE_RATIO, AT_DEAD_SHARE = 1e-3, 1e-4, 70.0, 0.7
# the fixed-threshold rule
FIXED_LOW, FIXED_HIGH = 1e-7, 100.0


@dataclass
class GradientRecord:
    """What the peers read from a run record, as arrays over its recorded steps.

    >>> GradientRecord(steps=np.arange(2), layer_norms=np.ones((2, 3)), kernel_norms=np.ones((2, 2)),
    ...                zero_frac=np.full((2, 4), np.nan), numel=np.ones(4), non_finite=np.zeros(2, bool))
    """

    steps: np.ndarray         # recorded optimizer steps
    layer_norms: np.ndarray   # steps × layers: ‖g‖ of each layer's parameters (NaN: no gradient)
    kernel_norms: np.ndarray  # steps × trainable weight tensors, in model order: ‖∂L/∂W‖
    zero_frac: np.ndarray     # steps × trainable parameter tensors: share of exactly-zero entries (NaN: not measured)
    numel: np.ndarray         # entries of each trainable parameter tensor
    non_finite: np.ndarray    # steps: a NaN/Inf in the gradients, the loss or the weights at that step

    def __post_init__(self) -> None:
        n = len(self.steps)
        for name in ("layer_norms", "kernel_norms", "zero_frac", "non_finite"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"GradientRecord.{name} needs one row per step ({n}); got {len(getattr(self, name))}")
        if self.zero_frac.shape[1] != len(self.numel):
            raise ValueError(f"GradientRecord: zero_frac has {self.zero_frac.shape[1]} columns, numel "
                             f"{len(self.numel)} entries; expected one per trainable parameter tensor")

    @classmethod
    def from_run(cls, run, model: nn.Module) -> "GradientRecord":
        """Read the record of a (closed) `gd.watch` run of `model`: only `run.steps` / `run.history` are used.

        >>> GradientRecord.from_run(run, setup.model).kernel_norms.shape     # (steps, weight tensors)
        """
        recorded = set(run.params)
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad and name in recorded]
        names = [name for name, _ in trainable]
        kernels = [name for name in names if name.rsplit(".", 1)[-1].startswith("weight")]
        steps = run.steps
        zero_frac, weights = _columns(run, "grad_zero_frac", names), _columns(run, "weight_norm", names)
        measured = ~np.isnan(zero_frac).all(axis=1)  # the detail steps, where the weights were taken too
        loss = run.history("loss") if "loss" in run.metrics else np.full(len(steps), np.nan)
        non_finite = ((np.nan_to_num(_columns(run, "nonfinite", names)) > 0).any(axis=1) | ~np.isfinite(loss)
                      | (np.nan_to_num(loss) >= LOSS_LIMIT)
                      | (measured & ~np.isfinite(weights).all(axis=1)))
        return cls(steps=steps, layer_norms=run.history("grad_norm"), kernel_norms=_columns(run, "grad_norm", kernels),
                   zero_frac=zero_frac, numel=np.array([p.numel() for _, p in trainable], dtype=float),
                   non_finite=non_finite)


def _columns(run, metric: str, params: list[str]) -> np.ndarray:
    """steps × params: `metric` of each named parameter tensor, from the run's record."""
    if not params:
        return np.empty((len(run.steps), 0))
    return np.stack([run.history(metric, layer=name) for name in params], axis=1)


def _first(steps: np.ndarray, fired: np.ndarray) -> int | None:
    hits = np.flatnonzero(fired)
    return int(steps[hits[0]]) if hits.size else None


def _found(steps: np.ndarray, rules: dict[str, np.ndarray]) -> dict[str, int]:
    found = {kind: _first(steps, fired) for kind, fired in rules.items()}
    return {kind: step for kind, step in found.items() if step is not None}


def autotrainer(record: GradientRecord) -> dict[str, int]:
    """AUTOTRAINER's symptoms: kind (`vanishing`, `exploding`, `non_finite`, `dying_relu`) -> first step it fired.

    >>> autotrainer(record)
    {'vanishing': 0}
    """
    n = len(record.steps)
    if record.kernel_norms.shape[1]:
        first, last = record.kernel_norms[:, 0], record.kernel_norms[:, -1]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = first / last
        vanishing, exploding = (ratio < AT_VANISH_RATIO) & (first < AT_VANISH_FIRST), ratio > AT_EXPLODE_RATIO
    else:
        vanishing = exploding = np.zeros(n, bool)
    measured = ~np.isnan(record.zero_frac)
    zeros = np.where(measured, record.zero_frac, 0.0) @ record.numel
    entries = measured.astype(float) @ record.numel
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(entries > 0, zeros / entries, np.nan)
    return _found(record.steps, {"vanishing": vanishing, "exploding": exploding, "non_finite": record.non_finite,
                                 "dying_relu": share >= AT_DEAD_SHARE})


def fixed_threshold(record: GradientRecord) -> dict[str, int]:
    """The fixed-threshold rule: kind (`vanishing`, `exploding`) -> first step a layer's norm crossed it.

    >>> fixed_threshold(record)
    {'exploding': 12}
    """
    norms = record.layer_norms
    return _found(record.steps, {"vanishing": (norms < FIXED_LOW).any(axis=1),
                                 "exploding": (norms > FIXED_HIGH).any(axis=1)})
