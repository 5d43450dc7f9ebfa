"""Plain-torch labels for the controls (no gradient_doctor import): does the model train, and how does the gradient
of its hidden-state stream change from the first block to the last at init?

    >>> label = train_label(CONTROLS["llama"], steps=100)
    >>> label.healthy, label.start_loss, label.end_loss
    (True, 6.25, 3.1)
    >>> stream_ratio(CONTROLS["llama"])        # ‖∂L/∂h_first‖ / ‖∂L/∂h_last‖ over the blocks' hidden states
    12.0

A control is healthy when its loss stays finite and the mean of its last 10 steps is at least MIN_DROP below the
mean of its first 5, with its own optimizer and a linear warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .controls import optimizer_for, train

MIN_DROP = 0.1  # relative


@dataclass
class Label:
    healthy: bool
    start_loss: float
    end_loss: float
    losses: list[float]


def train_label(control, steps: int) -> Label:
    """Train a fresh `control.build()` for `steps` steps on batches 0..steps-1 with its optimizer and warm-up."""
    model = control.build()
    losses = train(control, model, optimizer_for(control, model), steps)
    start, end = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    healthy = all(math.isfinite(v) for v in losses) and end < (1 - MIN_DROP) * start
    return Label(healthy, start, end, losses)


def stream_ratio(control) -> float:
    """For transformers models: ‖∂L/∂h‖ at the first block's output over the last block's (hidden_states of the
    model's own output), at init; NaN where the model does not return hidden states."""
    model = control.build()
    inputs, targets = control.batch(0)
    if not isinstance(inputs, dict):
        return math.nan
    try:
        output = model(**inputs, output_hidden_states=True)
    except (TypeError, ValueError):
        return math.nan
    hidden = getattr(output, "hidden_states", None) or getattr(output, "decoder_hidden_states", None)
    if not hidden or len(hidden) < 3:
        return math.nan
    first, last = hidden[1], hidden[-2]  # block outputs (the last entry is often after the final norm)
    grads = torch.autograd.grad(output.loss, [first, last], allow_unused=True)
    if any(g is None for g in grads):
        return math.nan
    return float(grads[0].norm() / grads[1].norm())


def init_is_finite(control) -> bool:
    """The loss and every parameter gradient at init are finite."""
    model = control.build()
    inputs, targets = control.batch(0)
    loss = control.loss(model, inputs, targets)
    loss.backward()
    return math.isfinite(float(loss)) and all(
        torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


__all__ = ["Label", "init_is_finite", "stream_ratio", "train_label"]


def gradient_norm(control) -> tuple[float, float]:
    """(loss, global gradient norm) of a fresh model on batch 0."""
    model = control.build()
    inputs, targets = control.batch(0)
    loss = control.loss(model, inputs, targets)
    loss.backward()
    squares = [p.grad.double().pow(2).sum() for p in model.parameters() if p.grad is not None]
    return float(loss), float(torch.stack(squares).sum().sqrt())


#: A broken model explodes at init when its gradient norm is EXPLODED times the healthy control's or more (or
#: non-finite). A learning rate is too high when the run ends non-finite, or keeps less than half of the progress the
#: healthy control makes in the same steps (its end loss above the control's end + half the control's drop).
EXPLODED = 10.0


def broken_label(variant, steps: int) -> tuple[bool, dict]:
    """Whether plain torch confirms `variant.label` ("exploding" or "lr_too_high"), and the evidence."""
    if variant.label == "exploding":
        (loss, norm), (_, healthy) = gradient_norm(variant.control), gradient_norm(variant.healthy)
        ratio = norm / healthy
        return (not math.isfinite(ratio)) or ratio >= EXPLODED, {"grad_norm_ratio": ratio, "loss_at_init": loss}
    broken, healthy = train_label(variant.control, steps), train_label(variant.healthy, steps)
    kept = healthy.end_loss + 0.5 * (healthy.start_loss - healthy.end_loss)
    lost = not all(math.isfinite(v) for v in broken.losses) or broken.end_loss > kept
    return healthy.healthy and lost, {"start_loss": broken.start_loss, "end_loss": broken.end_loss,
                                      "healthy_end_loss": healthy.end_loss}
