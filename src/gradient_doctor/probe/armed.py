"""Hooks that exist only on the steps that measure with them, and switch off for good on an error.

    >>> class Probe(ArmedHooks):
    ...     def _register(self): return [module.register_forward_hook(self._hook)]
    ...     def _forget(self): self._values = []
    >>> probe.arm()      # before a measuring step's forward pass
    >>> probe.disarm()   # after it: other steps run with no hook at all
"""

from __future__ import annotations


class ArmedHooks:
    """arm() registers the subclass's hooks (once) and forgets earlier values; disarm() removes them."""

    def __init__(self) -> None:
        self.on_error = None  # set by the owner: called with the exception; the hooks stay off afterwards
        self._handles: list = []
        self._failed = False

    @property
    def active(self) -> bool:
        """Whether the hooks are registered (and measuring) for the coming step."""
        return bool(self._handles)

    def arm(self) -> None:
        self._forget()
        if not self._handles and not self._failed:
            self._handles = self._register()

    def disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._forget()

    def _fail(self, err: Exception) -> None:
        self._failed = True
        if self.on_error is not None:
            self.on_error(err)

    def _register(self) -> list:
        raise NotImplementedError

    def _forget(self) -> None:
        raise NotImplementedError
