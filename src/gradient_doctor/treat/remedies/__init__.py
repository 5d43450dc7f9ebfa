"""Every remedy of the catalog as a function of its own (`gd.remedies.<name>(model, ...)`).

    >>> gd.remedies.swap_activation(model, "relu")
    >>> gd.remedies.he_init(model)
    >>> gd.remedies.lsuv_init(model, inputs=x)
    >>> gd.remedies.clip_grad_norm(optimizer, max_norm=1.0)

Each changes the model in place where it can and returns it (or its replacement when the root module itself is
replaced); use the return value. A remedy with nothing to act on raises `gd.NotApplicable`.
"""

from .activations import swap_activation
from .clipping import adaptive_clip, clip_grad_norm, clip_grad_value
from .depth import reduce_depth
from .init import critical_init, he_init, orthogonal_init, own_init, xavier_init, zero_biases
from .inputs import normalize_inputs
from .lsuv import lsuv_init
from .norm import insert_norm
from .pretrain import greedy_pretrain
from .recurrent import to_gru, to_lstm
from .recurrent_init import forget_gate_bias, identity_recurrent_init
from .residual import add_residual, fixup, rezero

__all__ = [
    "adaptive_clip", "add_residual", "clip_grad_norm", "clip_grad_value", "critical_init", "fixup",
    "forget_gate_bias", "greedy_pretrain", "he_init", "identity_recurrent_init", "insert_norm", "lsuv_init",
    "normalize_inputs", "orthogonal_init", "own_init", "reduce_depth", "rezero", "swap_activation", "to_gru", "to_lstm",
    "xavier_init", "zero_biases",
]
