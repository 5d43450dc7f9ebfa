"""Hooks and on-device statistics. Nothing here knows about storage or diagnosis rules."""

from .layers import SATURATION_EPS, ActivationSpec, Layer, Parameter, activation_spec, discover
from .metrics import LAYER_METRICS, PARAM_METRICS
from .probe import Cadence, Probe, StepVector

__all__ = [
    "SATURATION_EPS", "ActivationSpec", "Layer", "Parameter", "activation_spec", "discover",
    "LAYER_METRICS", "PARAM_METRICS", "Cadence", "Probe", "StepVector",
]
