"""Does a model have a skip connection? What `insert_norm`'s batch-norm guard can tell without running it.

    >>> has_skip_connection(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    False
    >>> has_skip_connection(add_residual(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))))
    True

Found: this package's Residual and Highway wrappers; nn.TransformerEncoderLayer / nn.TransformerDecoderLayer;
and any user-defined module whose `forward` source adds its input to something computed, read from the source's
syntax tree: `x + f(x)`, `out += identity` (with `identity = x` anywhere in forward), `torch.add(x, ...)`.
Limits: it reads syntax, not data flow, so `x + self.pos(t)` counts as a skip and an addition hidden in a helper
function, a functional call from another module, or a forward without retrievable source (REPL, compiled) does not;
one skip anywhere counts for the whole model.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable

from torch import nn

from .inserted import Highway, Residual

_KNOWN_SKIPS = (Residual, Highway, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


def has_skip_connection(model: nn.Module) -> bool:
    """Whether any module of `model` (the root included) is a known skip block or adds its input in forward."""
    return any(_is_skip(module) for module in model.modules())


def _is_skip(module: nn.Module) -> bool:
    if isinstance(module, _KNOWN_SKIPS):
        return True
    forward = type(module).forward
    return not (getattr(forward, "__module__", None) or "").startswith("torch.") and _adds_input(forward)


@functools.lru_cache(maxsize=256)
def _adds_input(forward: Callable) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(forward)))
    except (OSError, TypeError, SyntaxError):
        return False
    function = tree.body[0]
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    inputs = {arg.arg for arg in [*function.args.posonlyargs, *function.args.args][1:]}
    _add_aliases(function, inputs)
    return any(_is_input_addition(node, inputs) for node in ast.walk(function))


def _add_aliases(function: ast.AST, inputs: set[str]) -> None:
    """Names bound to an input name by a plain assignment (`identity = x`), to a fixed point."""
    assigns = [node for node in ast.walk(function) if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name)]
    grew = True
    while grew:
        grew = False
        for node in assigns:
            if node.value.id in inputs:
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id not in inputs:
                        inputs.add(target.id)
                        grew = True


def _is_input_addition(node: ast.AST, inputs: set[str]) -> bool:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _pairs_input(node.left, node.right, inputs) or _pairs_input(node.right, node.left, inputs)
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add):
        return _pairs_input(node.target, node.value, inputs) or _pairs_input(node.value, node.target, inputs)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("add", "add_"):
        # torch.add(x, f(x)), x.add(f(x)), out.add_(identity)
        return any(_is_input(arg, inputs) for arg in [node.func.value, *node.args])
    return False


def _is_input(node: ast.AST, inputs: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in inputs


def _pairs_input(side: ast.AST, other: ast.AST, inputs: set[str]) -> bool:
    """`side` is an input name and `other` is computed (not a constant or a bare `self.attribute`)."""
    if not _is_input(side, inputs):
        return False
    is_attribute = isinstance(other, ast.Attribute) and isinstance(other.value, ast.Name) and other.value.id == "self"
    return not isinstance(other, ast.Constant) and not is_attribute
