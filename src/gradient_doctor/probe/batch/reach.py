"""Where a batch goes: the order in which it first reaches some modules, and the output of one module's first call.

    >>> first_calls(model, x, [model[0], model[2]])     # the modules in the order the batch reaches them
    [Linear(...), Linear(...)]
    >>> first_output(model, x, model[2]).var()          # the forward pass stops right after model[2]

Both run the model once on the batch (no gradient is taken); their hooks are removed on return, also on errors.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..hooks import Hooks
from .calling import Inputs, call_model


class _FirstCalls(Hooks):
    """A forward hook on each module that notes the order of their first calls."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.modules = modules
        self.order: list[nn.Module] = []

    def _register(self, handles: list) -> None:
        for module in self.modules:
            handles.append(module.register_forward_hook(self._reached))

    def _reached(self, module: nn.Module, args: tuple, output: Tensor) -> None:
        if module not in self.order:
            self.order.append(module)


class _Measured(Exception):
    """Raised by the hook once the measured module has produced its output: the rest of the pass is not needed."""

    def __init__(self, output: Tensor):
        super().__init__()
        self.output = output


class _StopAfter(Hooks):
    """A forward hook that ends the pass with the module's output."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def _register(self, handles: list) -> None:
        handles.append(self.module.register_forward_hook(self._stop))

    @staticmethod
    def _stop(module: nn.Module, args: tuple, output: Tensor) -> None:
        raise _Measured(output)


def first_calls(model: nn.Module, inputs: Inputs, modules: list[nn.Module]) -> list[nn.Module]:
    """`modules` in the order the batch first reaches them; modules it never reaches are left out."""
    with _FirstCalls(modules) as calls:
        call_model(model, inputs)
    return calls.order


def first_output(model: nn.Module, inputs: Inputs, module: nn.Module) -> Tensor | None:
    """The output of `module`'s first call on the batch (the pass stops there); None if the pass misses it."""
    with _StopAfter(module):
        try:
            call_model(model, inputs)
        except _Measured as measured:
            return measured.output
    return None
