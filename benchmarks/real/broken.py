"""Broken variants of the controls, each with the kind of failure a plain-torch check confirms
(`labels.broken_label`): init scaled x30, normalisation removed, residual branches unscaled in a deep stack (a
26-block ResNet without its batch norms), a learning rate 100x too high. A variant whose label plain torch does not
confirm is reported and not scored (removing the norms of a small-init pre-norm LM shrinks its gradient, it does not
explode it).

    >>> variant = BROKEN["llama_init_x30"]
    >>> model = variant.build()          # the control's model, then broken
    >>> variant.label                    # "exploding": what the plain-torch check must confirm

`kinds` are the findings that name the failure: an explosion is exploding_gradient or non_finite; a learning rate far
too high is any finding of a diverging or non-finite run, or one that ranks decrease_lr first or second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from .controls import CONTROLS, Control

EXPLODING = ("exploding_gradient", "non_finite")
LR_TOO_HIGH = ("loss_divergence", "non_finite", "exploding_gradient", "loss_oscillation")


@dataclass(frozen=True)
class Broken:
    name: str
    control: Control  # the broken control: its build() makes the broken model, its optimizer the broken recipe
    healthy: Control  # the control it was made from (the label compares with it)
    label: str  # "exploding" (at init) or "lr_too_high" (in training)
    kinds: tuple[str, ...]


def _scaled(factor: float) -> Callable[[nn.Module], nn.Module]:
    def scale(model: nn.Module) -> nn.Module:
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d)) or type(module).__name__ == "Conv1D":
                    module.weight.mul_(factor)
        return model

    return scale


def _without(*norm_classes: str) -> Callable[[nn.Module], nn.Module]:
    """Every module whose class name is in `norm_classes` replaced by nn.Identity."""

    def strip(model: nn.Module) -> nn.Module:
        for name, module in list(model.named_modules()):
            if type(module).__name__ in norm_classes and name:
                parent, _, child = name.rpartition(".")
                setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
        return model

    return strip


def _broken_build(control: Control, surgery: Callable[[nn.Module], nn.Module]) -> Control:
    return replace(control, build=lambda: surgery(control.build()))


def _high_lr(control: Control, factor: float) -> Control:
    def optimizer(params: list) -> torch.optim.Optimizer:
        opt = control.optimizer(params)
        for group in opt.param_groups:
            group["lr"] *= factor
        return opt

    return replace(control, optimizer=optimizer)


def _variants() -> list[Broken]:
    out = []
    for name in ("gpt2", "llama", "bert", "t5", "vit", "mamba"):
        c = CONTROLS[name]
        out.append(Broken(f"{name}_init_x30", _broken_build(c, _scaled(30.0)), c, "exploding", EXPLODING))
    for name, norms in (("gpt2", ("LayerNorm",)), ("llama", ("LlamaRMSNorm",)), ("bert_deep", ("LayerNorm",))):
        c = CONTROLS[name]
        out.append(Broken(f"{name}_no_norm", _broken_build(c, _without(*norms)), c, "exploding", EXPLODING))
    c = CONTROLS["resnet_deep"]
    out.append(Broken("resnet_deep_no_bn", _broken_build(c, _without("BatchNorm2d")), c, "exploding", EXPLODING))
    for name in ("gpt2", "llama", "resnet18", "word_lm_transformer"):
        c = CONTROLS[name]
        out.append(Broken(f"{name}_lr_x100", _high_lr(c, 100.0), c, "lr_too_high", LR_TOO_HIGH))
    return out


BROKEN: dict[str, Broken] = {b.name: b for b in _variants()}
