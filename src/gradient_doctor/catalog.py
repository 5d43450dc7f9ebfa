"""The one remedy table: every remedy's name (what findings rank and `gd.treat` accepts), its one-liner, its family
and its cost. Rules rank these names, `treat` binds each surgery name to the function of the same name in
`gd.remedies`, and `gd.remedies` exports those functions.

    >>> CATALOG["he_init"]
    'He (Kaiming) normal init, fan_in, zero biases, for ReLU-family activations (He et al. 2015)'
    >>> ENTRIES["insert_norm:layer"].family, ENTRIES["insert_norm:layer"].cost
    ('architecture', 2)

Adding a remedy: one row here, and one function `name(model, ...)` in `treat/remedies/<family>.py`, exported from
`treat/remedies/__init__.py`. A name `base:arg` calls `base(model, "arg")`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Families whose remedies change the model (surgery, verified by checkup on the batch); "training" remedies are
#: attached to the optimizer, "advice" is reported.
SURGERY_FAMILIES = ("init", "activation", "architecture")


@dataclass(frozen=True)
class Entry:
    """One remedy. `cost` orders surgery cheapest-first: 0 init (and the inputs' scale), 1 module swap, 2 added
    modules, 3 training; `opt_in` surgery runs only when named, never because a finding ranked it."""

    name: str
    line: str
    family: str  # "init", "activation", "architecture", "training" or "advice"
    cost: int = 0
    opt_in: bool = False

    @property
    def kind(self) -> str:
        """"surgery" (verified by checkup), "training" (attached to the optimizer) or "advice" (reported)."""
        return "surgery" if self.family in SURGERY_FAMILIES else self.family


_TABLE = (
    # initialisation
    Entry("he_init", "He (Kaiming) normal init, fan_in, zero biases, for ReLU-family activations (He et al. 2015)",
          "init"),
    Entry("xavier_init", "Xavier/Glorot init for tanh/sigmoid-family activations (Glorot & Bengio 2010)", "init"),
    Entry("orthogonal_init", "orthogonal weight matrices (dynamical isometry, Pennington et al. 2017; IRNN, Le et al. "
          "2015)", "init"),
    Entry("lsuv_init", "orthonormal init, then rescale each layer's output variance to 1 (Mishkin & Matas 2016)", "init"),
    Entry("critical_init", "init at the edge of chaos (chi_1 = 1) for the model's activation; delta-orthogonal "
          "convolutions (Schoenholz et al. 2017; Xiao et al. 2018)", "init"),
    Entry("forget_gate_bias", "raise the LSTM forget-gate (GRU update-gate) bias to 1-3 (Jozefowicz et al. 2015; "
          "chrono)", "init"),
    Entry("identity_recurrent_init", "identity recurrent weights and zero biases for ReLU RNNs (IRNN, Le et al. 2015)",
          "init"),
    Entry("own_init", "the architecture's own init drawn again: a transformers (or nanoGPT-style) model's "
          "_init_weights on every module; tried before a generic scheme on models that have one", "init"),
    Entry("zero_biases", "zero the biases and keep the weights: units a negative bias holds below zero fire again, "
          "and a chosen init (pretrained, identity recurrence) is kept", "init"),
    Entry("fixup", "rescale residual branches by depth so the output does not grow with depth (Fixup, Zhang et al. "
          "2019)", "init"),
    Entry("rezero", "a zero-initialised scale on each residual branch (ReZero, Bachlechner et al. 2020)", "init"),
    # activations
    Entry("swap_activation:relu", "replace saturating activations (sigmoid, tanh) by ReLU", "activation", 1),
    Entry("swap_activation:leaky_relu", "replace ReLU by LeakyReLU (no zero-gradient half-line: units cannot die)",
          "activation", 1),
    Entry("swap_activation:prelu", "replace the activation by PReLU (a learned negative slope)", "activation", 1),
    Entry("swap_activation:elu", "replace the activation by ELU (smooth, negative outputs, no dead half-line)",
          "activation", 1),
    Entry("swap_activation:selu", "replace the activation by SELU (self-normalising with LeCun init, Klambauer et al. "
          "2017)", "activation", 1),
    Entry("swap_activation:gelu", "replace the activation by GELU", "activation", 1),
    Entry("swap_activation:silu", "replace the activation by SiLU (swish)", "activation", 1),
    Entry("swap_activation:tanh", "replace the activation by tanh (zero-centred; derivative peak 1, sigmoid's is 0.25)",
          "activation", 1),
    # architecture
    Entry("insert_norm:batch", "insert batch normalisation after each linear/conv layer", "architecture", 2),
    Entry("insert_norm:layer", "insert layer normalisation after each linear layer (sequence and transformer models)",
          "architecture", 2),
    Entry("add_residual", "wrap runs of shape-preserving blocks in identity skip connections (He et al. 2016; "
          "SkipInit)", "architecture", 2),
    Entry("to_lstm", "replace a vanilla RNN by an LSTM (gated memory, Hochreiter & Schmidhuber 1997)",
          "architecture", 2),
    Entry("to_gru", "replace a vanilla RNN by a GRU", "architecture", 2),
    Entry("reduce_depth", "use fewer layers (or fewer time steps per truncated backprop window)", "architecture", 3,
          opt_in=True),
    Entry("greedy_pretrain", "greedy layer-wise pre-training of the lower layers as autoencoders (Bengio et al. 2007)",
          "architecture", 3, opt_in=True),
    # the data before the weights: an init fitted to off-scale inputs is wrong once they are standardised
    Entry("normalize_inputs", "standardise the inputs (zero mean, unit variance per feature): their scale saturates "
          "layer 1", "architecture", 0),
    # training loop
    Entry("clip_grad_norm", "clip the global gradient norm each step (Pascanu et al. 2013)", "training"),
    Entry("clip_grad_value", "clip each gradient entry to [-c, c] each step", "training"),
    Entry("adaptive_clip", "clip each unit's gradient to lambda times its weight norm (AGC, Brock et al. 2021)",
          "training"),
    Entry("increase_lr", "raise the learning rate: the weights barely move from one step to the next", "advice"),
    Entry("decrease_lr", "lower the learning rate (or warm it up): the steps overshoot", "advice"),
    Entry("decrease_weight_decay", "lower the optimizer's weight decay: it pulls the weights toward 0", "advice"),
    Entry("check_inputs", "the data itself holds inf/NaN: find the samples (torch.isfinite(x).all(...)) and fix or "
          "drop them", "advice"),
)

ENTRIES: dict[str, Entry] = {entry.name: entry for entry in _TABLE}
#: name -> one-liner: what findings, reports and `gd.treat` show next to a remedy's name.
CATALOG: dict[str, str] = {entry.name: entry.line for entry in _TABLE}
