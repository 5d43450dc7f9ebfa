"""The catalog of remedy names that findings rank (the names `gd.treat` accepts), one line each.

    >>> CATALOG["he_init"]
    'He (Kaiming) normal init, fan_in, zero biases, for ReLU-family activations (He et al. 2015)'
    >>> init_for("rectifier")
    'he_init'
"""

from __future__ import annotations

CATALOG: dict[str, str] = {
    # initialisation
    "he_init": "He (Kaiming) normal init, fan_in, zero biases, for ReLU-family activations (He et al. 2015)",
    "xavier_init": "Xavier/Glorot init for tanh/sigmoid-family activations (Glorot & Bengio 2010)",
    "orthogonal_init": "orthogonal weight matrices (dynamical isometry, Pennington et al. 2017; IRNN, Le et al. 2015)",
    "lsuv_init": "orthonormal init, then rescale each layer's output variance to 1 (Mishkin & Matas 2016)",
    "critical_init": "init at the edge of chaos (chi_1 = 1) for the model's activation; delta-orthogonal convolutions "
                     "(Schoenholz et al. 2017; Xiao et al. 2018)",
    "forget_gate_bias": "raise the LSTM forget-gate (GRU update-gate) bias to 1-3 (Jozefowicz et al. 2015; chrono)",
    "identity_recurrent_init": "identity recurrent weights and zero biases for ReLU RNNs (IRNN, Le et al. 2015)",
    "fixup": "rescale residual branches by depth so the output does not grow with depth (Fixup, Zhang et al. 2019)",
    "rezero": "a zero-initialised scale on each residual branch (ReZero, Bachlechner et al. 2020)",
    # activations
    "swap_activation:relu": "replace saturating activations (sigmoid, tanh) by ReLU",
    "swap_activation:leaky_relu": "replace ReLU by LeakyReLU (no zero-gradient half-line: units cannot die)",
    "swap_activation:prelu": "replace the activation by PReLU (a learned negative slope)",
    "swap_activation:elu": "replace the activation by ELU (smooth, negative outputs, no dead half-line)",
    "swap_activation:selu": "replace the activation by SELU (self-normalising with LeCun init, Klambauer et al. 2017)",
    "swap_activation:gelu": "replace the activation by GELU",
    "swap_activation:silu": "replace the activation by SiLU (swish)",
    "swap_activation:tanh": "replace the activation by tanh (zero-centred; derivative peak 1, sigmoid's is 0.25)",
    # architecture
    "insert_norm:batch": "insert batch normalisation after each linear/conv layer",
    "insert_norm:layer": "insert layer normalisation after each linear layer (sequence and transformer models)",
    "add_residual": "wrap runs of shape-preserving blocks in identity skip connections (He et al. 2016; SkipInit)",
    "to_lstm": "replace a vanilla RNN by an LSTM (gated memory, Hochreiter & Schmidhuber 1997)",
    "to_gru": "replace a vanilla RNN by a GRU",
    "reduce_depth": "use fewer layers (or fewer time steps per truncated backprop window)",
    "greedy_pretrain": "greedy layer-wise pre-training of the lower layers as autoencoders (Bengio et al. 2007)",
    "normalize_inputs": "standardise the inputs (zero mean, unit variance per feature): their scale saturates layer 1",
    # training loop
    "clip_grad_norm": "clip the global gradient norm each step (Pascanu et al. 2013)",
    "clip_grad_value": "clip each gradient entry to [-c, c] each step",
    "adaptive_clip": "clip each unit's gradient to lambda times its weight norm (AGC, Brock et al. 2021)",
    "increase_lr": "raise the learning rate: the weights barely move from one step to the next",
    "decrease_lr": "lower the learning rate (or warm it up): the steps overshoot",
    "decrease_weight_decay": "lower the optimizer's weight decay: it pulls the weights toward 0",
    "check_inputs": "the data itself holds inf/NaN: find the samples (torch.isfinite(x).all(...)) and fix or drop them",
}

_INIT_FOR_FAMILY = {"rectifier": "he_init", "saturating": "xavier_init", "unknown": "lsuv_init"}


def init_for(family: str) -> str:
    """The init remedy that matches an activation family: "rectifier", "saturating" or "unknown"."""
    return _INIT_FOR_FAMILY[family]


def for_vanishing(family: str, by_activations: bool) -> list[str]:
    """Vanishing through depth: swap saturating activations when they lose the gradient, else the matching init.

    >>> for_vanishing("saturating", by_activations=True)[0]
    'swap_activation:relu'
    """
    if by_activations and family == "saturating":
        return ranked("swap_activation:relu", "he_init", "insert_norm:batch", "add_residual", "reduce_depth")
    return ranked(init_for(family), "orthogonal_init", "lsuv_init", "insert_norm:batch", "add_residual", "reduce_depth")


def ranked(*names: str) -> list[str]:
    """`names` in order, duplicates dropped; every name must be in the catalog.

    >>> ranked("he_init", "insert_norm:batch", "he_init")
    ['he_init', 'insert_norm:batch']
    """
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise ValueError(f"remedy names must come from the catalog {sorted(CATALOG)}; got {unknown}")
    return list(dict.fromkeys(names))
