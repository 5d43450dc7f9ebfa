"""The one owner of hook handles: every hook gradient-doctor registers is held by a `Hooks` and removed by it.

    >>> class Probe(Hooks):
    ...     def _register(self, handles): handles.append(module.register_forward_hook(self._hook))
    ...     def _forget(self): self._values = []
    >>> probe.arm()      # before a measuring step's forward pass
    >>> probe.disarm()   # after it: other steps run with no hook at all
    >>> with Probe():    # or for one measured batch (checkup): removed on exit, also on errors
    ...     model(x)

A copy of a module made while it is hooked (`copy.deepcopy(model)` for the best model so far, `torch.save(model)`)
holds a hook that does nothing in place of each of these: the copy is not watched, and copying never reaches the
probe and its record (which cannot be copied: an SQLite connection).
"""

from __future__ import annotations


class Hooks:
    """arm() registers the subclass's hooks (once) and forgets earlier values; disarm() removes them. As a context
    manager: armed on entry, disarmed on exit. Hooks registered before a failure in `_register()` are removed too."""

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
            handles: list = []
            try:
                self._register(handles)
            except BaseException:
                for handle in handles:
                    handle.remove()
                raise
            for handle in handles:
                _own(handle)
            self._handles = handles

    def disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._forget()

    def __enter__(self):
        self.arm()
        return self

    def __exit__(self, *exc) -> None:
        self.disarm()

    def _fail(self, err: Exception) -> None:
        self._failed = True
        if self.on_error is not None:
            self.on_error(err)

    def _register(self, handles: list) -> None:
        """Register the hooks, appending each handle to `handles`."""
        raise NotImplementedError

    def _forget(self) -> None:
        """Drop the values measured on earlier steps (nothing to drop by default)."""


class _Owned:
    """A registered hook that stays with its owner: copied (deepcopy, pickle) it becomes `unhooked`."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __deepcopy__(self, memo: dict):
        return unhooked

    def __reduce__(self):
        return _unhooked, ()


def unhooked(*args, **kwargs) -> None:
    """What a copy of a hooked module or optimizer calls in place of gradient-doctor's hook: nothing."""


def _unhooked():
    return unhooked


def _own(handle) -> None:
    """Wrap the hook that `handle` (a torch RemovableHandle) registered in an `_Owned`, in place; other handles (a
    wrapped Keras activation, probe/keras_layers.py) hold no hook dict."""
    ref = getattr(handle, "hooks_dict_ref", None)
    hooks = ref() if ref is not None else None
    if hooks is not None and handle.id in hooks:
        hooks[handle.id] = _Owned(hooks[handle.id])
