"""What `checkup` measured, as plain data: per layer, per recurrent module, and the gradient budget.

    >>> m = diag.measurement
    >>> [(layer.name, round(layer.log_gain, 2)) for layer in m.layers]
    [('0', -0.24), ('1', -0.62), ...]
    >>> m.budget.end_to_end, m.budget.xi
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..._json import json_safe


@dataclass
class LayerStats:
    """One layer (module qualified name), measured on the batch; norms are L2, NaN where not measured.

    `delta_in`/`delta_out` are the norms of the loss gradient with respect to the layer's input (the part that
    flows through this layer) and its output, summed in square over calls and trials; `delta_mid` the norm at the
    input of an activation the layer applies itself (Keras `Dense(activation=...)`), which splits its gain between
    its weights and its activation.
    """

    name: str
    kind: str  # module type, e.g. "Linear"
    role: str  # "activation" (activation module), "recurrent" (RNN/LSTM/GRU) or "weights" (other modules with
    # parameters of their own)
    family: str | None  # activations (also one applied inside a weight layer): "saturating", "rectifier" or
    # "smooth"; None for other layers
    grad_norm: float  # ‖∂L/∂θ‖ over the module's own parameters jointly
    weight_norm: float  # ‖θ‖ over the module's own parameters (non-finite when a weight is)
    delta_in: float
    delta_out: float
    rms_out: float  # forward scale: root mean square of the layer's outputs
    rms_in: float  # ... and of its (first floating-point) input
    normalizes: bool  # a normalisation layer (BatchNorm, LayerNorm, GroupNorm, ...): it resets the forward scale
    saturated_frac: float = math.nan  # saturating activations
    dead_frac: float = math.nan  # rectifiers: units zero on every sample of the batch
    samples_per_unit: float = math.nan  # outputs per unit seen in the batch (positions × examples)
    nonfinite: tuple[str, ...] = ()  # where inf/NaN showed: "inputs", "weights", "activations", "gradients"
    delta_mid: float = math.nan

    @property
    def gain(self) -> float:
        """Backward gain ‖δ_in‖/‖δ_out‖: how much of the gradient this layer passes down."""
        if self.delta_out == 0:
            return math.nan
        return self.delta_in / self.delta_out

    @property
    def forward_gain(self) -> float:
        """rms_out / rms_in: how much this layer scales the forward signal."""
        return self.rms_out / self.rms_in if self.rms_in > 0 else math.nan

    @property
    def log_gain(self) -> float:
        """The layer's entry in the gradient budget: orders of magnitude it adds (> 0) or loses (< 0)."""
        gain = self.gain
        if math.isnan(gain):
            return math.nan
        return -math.inf if gain == 0 else math.log10(gain)

    def role_gains(self) -> list[tuple[str, float]]:
        """The layer's log gain by role: [(role, log_gain)], or for a weight layer that applies its activation
        itself (`delta_mid` measured) [("weights", in/mid), ("activation", mid/out)], which add up to it."""
        if not self.delta_mid > 0 or not self.delta_out > 0:
            return [(self.role, self.log_gain)]
        return [("weights", _log10(self.delta_in / self.delta_mid)),
                ("activation", _log10(self.delta_mid / self.delta_out))]

    def to_dict(self) -> dict:
        return json_safe({**self.__dict__, "gain": self.gain, "log_gain": self.log_gain,
                          "forward_gain": self.forward_gain})


@dataclass
class Budget:
    """The end-to-end backward ratio and its attribution to layers.

    For a plain chain of layers the layers' log gains sum to `log10(end_to_end)`; whatever skip connections,
    functional ops (F.relu, dropout, pooling) and multiply-used tensors add is `remainder`.
    """

    first: str  # where the end-to-end ratio starts: the first layer's output
    last: str  # the last layer's output
    end_to_end: float  # ‖δ at first‖ / ‖δ at last‖
    through_depth: float  # end_to_end without the recurrent layers' gains (judged on the time axis)
    depth: int  # layers with weights (recurrent ones included) after the first
    xi: float  # depth scale ξ in layers: ‖δ‖² ∝ exp(-depth/ξ) (Schoenholz et al. 2017)
    by_role: dict[str, float]  # summed log10 gains per role: activation, weights, recurrent
    remainder: float  # log10(end_to_end) minus the attributed sum

    def to_dict(self) -> dict:
        return json_safe(self.__dict__)


@dataclass
class TimeStats:
    """One recurrent module: the gradient at each time step's input for a loss on the last step."""

    name: str
    kind: str  # RNN, LSTM or GRU
    steps: int
    relative: np.ndarray  # ‖∂L/∂x_t‖ / ‖∂L/∂x_T‖, t = 1..T (float64)
    horizon: int  # memory horizon: steps back from T over which `relative` stays >= FADE
    resolution_horizon: int  # steps back over which `relative` stays above the input dtype's resolution
    eps: float  # that resolution: torch.finfo(dtype).eps

    def to_dict(self) -> dict:
        return json_safe(self.__dict__)


@dataclass
class Measurement:
    """Everything one `checkup` measured."""

    layers: list[LayerStats]  # forward order (first call)
    budget: Budget
    recurrent: list[TimeStats] = field(default_factory=list)
    loss_source: str = "readout"  # "readout" (fixed random linear readout), "loss_fn" or "output.loss"
    loss: float = math.nan
    trials: int = 1

    def to_dict(self) -> dict:
        return {
            "layers": [layer.to_dict() for layer in self.layers],
            "budget": self.budget.to_dict(),
            "recurrent": [t.to_dict() for t in self.recurrent],
            "loss_source": self.loss_source,
            "loss": json_safe(self.loss),
            "trials": self.trials,
        }


def _log10(value: float) -> float:
    return -math.inf if value == 0 else math.log10(value)
