"""The torch face of a Keras optimizer: each `optimizer.apply(grads, variables)` of `model.fit` becomes a
`torch.optim.Optimizer.step()`, so `gd.watch`'s step hooks (gradients, updates, the guard) run around it.

    >>> step = KerasStep(model)              # a compiled keras.Model (torch backend); wraps optimizer.apply
    >>> run = gd.watch(model, step)           # each Keras update is now a watched optimizer step
    >>> step.loss                             # the loss of the last training batch (detached, on its device)
    >>> step.release()                        # the Keras optimizer and model as they were

Keras's torch trainer runs backward, then calls `optimizer.apply` with the gradients (a LossScaleOptimizer hands
its inner optimizer the unscaled ones: the inner one is wrapped). Before the step hooks run, the given gradients
are put in the variables' `.grad`; after them, the gradients then in `.grad` are applied: the guard's clipping
(in place) acts, and a variable whose gradient the guard dropped (None) is not updated. Keras clips (`clipnorm`,
`clipvalue`) inside `apply`, after the hooks: the recorded gradients are unclipped. The learning rate is the
param group's `lr`: set it (as the guard's rollback does) and Keras's is set before the next update; a
`LearningRateSchedule` cannot be set, which is warned once. `state_dict()` holds the Keras optimizer's variables
(its iterations, learning rate, moments), so a rollback restores them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch


class KerasStep(torch.optim.Optimizer):
    """`model.optimizer`'s updates as torch optimizer steps, and `model.compute_loss`'s last training loss."""

    def __init__(self, model: Any):
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # LossScaleOptimizer: unscaled
        for stale in {_wrapper_owner(optimizer, "apply"), _wrapper_owner(model, "compute_loss")} - {None}:
            stale.release()  # left by a fit that raised (Keras calls no callback on an exception)
        self.keras_optimizer = optimizer
        self.loss: torch.Tensor | None = None
        self.on_release: Callable[[], None] | None = None
        self._pending: tuple[list, list] | None = None
        self._lr = _learning_rate(optimizer)
        self._warned_schedule = False
        super().__init__([v.value for v in model.trainable_variables], {"lr": self._lr})
        self._keras_apply, self._keras_loss = optimizer.apply, model.compute_loss
        self._wrapped = [(owner, name, vars(owner).get(name)) for owner, name in
                         ((optimizer, "apply"), (model, "compute_loss"))]  # an instance attribute is put back
        optimizer.apply = self._apply
        model.compute_loss = self._compute_loss

    def _compute_loss(self, *args: Any, **kwargs: Any) -> Any:
        loss = self._keras_loss(*args, **kwargs)
        self.loss = loss.detach() if isinstance(loss, torch.Tensor) else None
        return loss

    def _apply(self, grads: list, trainable_variables: list | None = None) -> None:
        variables = list(trainable_variables if trainable_variables is not None
                         else self.keras_optimizer._trainable_variables)
        for variable, grad in zip(variables, grads):
            if grad is not None:
                variable.value.grad = grad  # the step hooks read .grad: what Keras is about to apply
        self._sync_lr()
        self._pending = (list(grads), variables)
        try:
            self.step()
        finally:
            self._pending = None

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        """Apply the pending Keras update with the gradients now in `.grad` (called by Keras's `optimizer.apply`)."""
        if self._pending is None:
            raise RuntimeError("KerasStep.step() runs inside model.fit (optimizer.apply); it cannot be called directly")
        grads, variables = self._pending
        kept = [(variable.value.grad, variable) for variable, grad in zip(variables, grads)
                if grad is not None and variable.value.grad is not None]
        if kept:
            self._keras_apply(*map(list, zip(*kept)))

    def _sync_lr(self) -> None:
        """The param group's lr, when changed since it was read, to Keras; then Keras's current lr to the group."""
        group = self.param_groups[0]
        if group["lr"] != self._lr:
            try:
                self.keras_optimizer.learning_rate = group["lr"]
            except TypeError:  # a LearningRateSchedule is not settable
                if not self._warned_schedule:
                    self._warned_schedule = True
                    warnings.warn(f"gradient-doctor: the learning rate was set to {group['lr']:.3g} (the guard's "
                                  "rollback), but this Keras optimizer follows a LearningRateSchedule, which cannot "
                                  "be set: it keeps its schedule", RuntimeWarning, stacklevel=3)
        group["lr"] = self._lr = _learning_rate(self.keras_optimizer)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["keras"] = [v.value.detach().clone() for v in self.keras_optimizer.variables]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        values = state.pop("keras")
        super().load_state_dict(state)
        for variable, value in zip(self.keras_optimizer.variables, values):
            variable.assign(value)
        self._lr = _learning_rate(self.keras_optimizer)

    def release(self) -> None:
        """Hand Keras a learning rate set since the last update, unwrap the Keras optimizer and model, then call
        `on_release` (once)."""
        self._sync_lr()
        for owner, name, original in self._wrapped:
            if _wrapper_owner(owner, name) is self:
                delattr(owner, name)
                if original is not None:
                    setattr(owner, name, original)
        release, self.on_release = self.on_release, None
        if release is not None:
            release()


def _wrapper_owner(owner: Any, name: str) -> KerasStep | None:
    """The `KerasStep` whose wrapper `owner.name` is, if it is one."""
    step = getattr(vars(owner).get(name), "__self__", None)
    return step if isinstance(step, KerasStep) else None


def _learning_rate(optimizer: Any) -> float:
    """The Keras optimizer's current learning rate (a schedule's at its current iteration), on the host."""
    value = optimizer.learning_rate
    return float(getattr(value, "value", value))
