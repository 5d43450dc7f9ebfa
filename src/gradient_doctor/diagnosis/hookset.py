"""A context manager that owns a set of hook handles and removes every one on exit, also on errors.

    >>> class Taps(HookSet):
    ...     def register(self, handles):
    ...         handles.append(module.register_forward_hook(self.hook))
    >>> with Taps():
    ...     model(x)
"""

from __future__ import annotations


class HookSet:
    """Subclasses append their hook handles in `register()`; `with` removes them all on exit (also
    those registered before a failure in `register()` itself)."""

    def register(self, handles: list) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._handles: list = []
        try:
            self.register(self._handles)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for handle in getattr(self, "_handles", []):
            handle.remove()
        self._handles = []
