"""Greedy layer-wise pre-training of a Sequential MLP's hidden layers as autoencoders, one layer at a time.

    >>> model = nn.Sequential(nn.Linear(20, 16), nn.Sigmoid(), nn.Linear(16, 12), nn.Sigmoid(), nn.Linear(12, 3))
    >>> greedy_pretrain(model, inputs=x_train, epochs=50)            # or inputs=DataLoader of (x, y) batches
    Sequential(...)

The seed material's "multi-level hierarchy" (Hinton et al. 2006; Bengio et al. 2007): each hidden layer in turn,
from the input up, is trained to reconstruct its own input (the representation the already pre-trained layers
below it produce from the data), so every layer starts supervised training from weights that carry information
about the data instead of from a random map whose gradient may vanish on the way down.

For hidden layer k the encoder is its block, the nn.Linear and everything that follows it up to the next
nn.Linear (activation, dropout, normalisation); the decoder is a fresh nn.Linear back to the block's input size,
discarded afterwards. The decoder starts at the least-squares fit to the layer's current code on the first batch,
so training starts from the best linear reconstruction the random layer allows and improves on it (a random
decoder first drags the encoder along while it catches up: after few steps the layer can end worse than it
began). Decoder weights are untied: a tied decoder (W^T) would also pull W towards an orthogonal map, and it is
thrown away anyway. The loss is the mean squared reconstruction error, minimised with Adam for `epochs` passes
over the data. The layers below run in eval mode (deterministic targets), the block in train mode. The last
nn.Linear and what follows it (the output layer) are never touched; nested nn.Sequential blocks are flattened;
modules before the first nn.Linear (e.g. nn.Flatten) are a fixed input transform. Gradients already stored on
the model's parameters, and every module's train/eval mode, are restored at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import torch
from rich.console import Console
from rich.progress import Progress
from torch import Tensor, nn

from ...errors import InvalidType, InvalidValue, NotApplicable
from ..surgery.modules import place_like

Batches = Callable[[], Iterator[Tensor]]  # a fresh pass over the data (one epoch) per call


def greedy_pretrain(
    model: nn.Module,
    *,
    inputs: Tensor | tuple | Iterable,
    epochs: int = 50,
    lr: float = 1e-3,
    batch_size: int | None = None,
    progress: bool = True,
) -> nn.Module:
    """Pre-train every hidden nn.Linear of the nn.Sequential `model` as an autoencoder, in place; returns `model`.

        >>> greedy_pretrain(model, inputs=x, epochs=50, lr=1e-3, batch_size=64)

    `inputs`: a tensor of examples (mini-batches of `batch_size`, reshuffled each epoch; all at once when None),
    a tuple in `call_model` form (its first element is that tensor), or a DataLoader / other iterable of batches
    (a tensor, or a tuple/list whose first element is x; a one-shot iterator is read once and kept). Batches are
    moved to the device and dtype of the first nn.Linear. `progress` shows a rich progress bar (on stderr) once
    the pre-training has run for more than a second.
    """
    layers = _flatten(model)
    cuts = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    if len(cuts) < 3:
        raise NotApplicable(
            f"greedy_pretrain: needs at least 2 hidden nn.Linear layers before the output layer, "
            f"found {max(len(cuts) - 1, 0)}"
        )
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidValue(f"greedy_pretrain: epochs must be an integer >= 1, got {epochs!r}")
    if not lr > 0:
        raise InvalidValue(f"greedy_pretrain: lr must be > 0, got {lr!r}")
    batches = _batches(inputs, batch_size, like=layers[cuts[0]].weight)
    blocks = [layers[a:b] for a, b in zip(cuts, cuts[1:])]  # the output layer (from cuts[-1]) is left out
    modes = [(m, m.training) for m in model.modules()]
    below = layers[: cuts[0]]
    try:
        with torch.enable_grad(), _DelayedProgress(len(blocks) * epochs, enabled=progress) as bar:
            for k, block in enumerate(blocks):
                bar.describe(f"pre-training hidden layer {k + 1}/{len(blocks)}")
                _train_block(below, block, batches, epochs, lr, bar)
                below = below + block
    finally:
        for module, training in modes:
            module.train(training)
    return model


def _train_block(
    below: list[nn.Module], block: list[nn.Module], batches: Batches, epochs: int, lr: float, bar: _DelayedProgress
) -> None:
    """Train `block` (and a linear decoder) to reconstruct its input, the output of the layers `below`."""
    linear = block[0]
    encoder = nn.Sequential(*block).train()
    decoder = place_like(nn.Linear(linear.out_features, linear.in_features), linear)
    params = [p for p in encoder.parameters() if p.requires_grad]
    saved = [p.grad for p in params]
    for module in below:
        module.eval()
    with torch.no_grad():
        h = _represent(below, next(batches()))
        _least_squares(decoder, encoder(h), h)
    optimizer = torch.optim.Adam([*params, *decoder.parameters()], lr=lr)
    try:
        for _ in range(epochs):
            for x in batches():
                with torch.no_grad():
                    h = _represent(below, x)
                loss = nn.functional.mse_loss(decoder(encoder(h)), h)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.advance()
    finally:
        for p, grad in zip(params, saved):
            p.grad = grad


def _represent(below: list[nn.Module], x: Tensor) -> Tensor:
    for module in below:
        x = module(x)
    return x


def _least_squares(decoder: nn.Linear, code: Tensor, target: Tensor) -> None:
    """Set `decoder` to the affine map from `code` to `target` with the least squared error (pseudo-inverse)."""
    code, target = code.reshape(-1, code.shape[-1]), target.reshape(-1, target.shape[-1])  # rows: examples
    dtype = torch.promote_types(code.dtype, torch.float32)  # float64 models solve in float64
    design = torch.cat([code, torch.ones_like(code[:, :1])], dim=1).to(dtype)
    solution = torch.linalg.pinv(design) @ target.to(dtype)
    decoder.weight.copy_(solution[:-1].T)
    decoder.bias.copy_(solution[-1])


def _flatten(model: nn.Module) -> list[nn.Module]:
    """The leaf modules of a (possibly nested) nn.Sequential, in order."""
    if not isinstance(model, nn.Sequential):
        raise NotApplicable(f"greedy_pretrain: expected an nn.Sequential MLP, got {type(model).__name__}")
    return [leaf for child in model for leaf in (_flatten(child) if isinstance(child, nn.Sequential) else [child])]


def _batches(inputs: Tensor | tuple | Iterable, batch_size: int | None, like: Tensor) -> Batches:
    """A callable giving one epoch of input batches on `like`'s device and dtype."""
    if isinstance(inputs, tuple) and inputs and isinstance(inputs[0], Tensor):
        inputs = inputs[0]
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidValue(f"greedy_pretrain: batch_size must be an integer >= 1 or None, got {batch_size!r}")
    if isinstance(inputs, Tensor):
        data = _placed(inputs, like)
        if batch_size is None:
            return lambda: iter([data])
        return lambda: iter(data[torch.randperm(len(data), device=data.device)].split(batch_size))
    if isinstance(inputs, (dict, str, bytes)) or not isinstance(inputs, Iterable):
        raise InvalidType(
            "greedy_pretrain: inputs must be a tensor or an iterable of batches (tensors or (x, y) tuples), "
            f"got {type(inputs).__name__}"
        )
    if batch_size is not None:
        raise InvalidValue("greedy_pretrain: batch_size applies to tensor inputs only; the iterable already batches")
    if iter(inputs) is inputs:  # a one-shot iterator: keep its batches for the later epochs
        inputs = list(inputs)
    return lambda: (_placed(_first(batch), like) for batch in inputs)


def _first(batch: object) -> Tensor:
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, Tensor):
        raise InvalidType(f"greedy_pretrain: each batch must be a tensor or an (x, y) tuple, got {type(batch).__name__}")
    return x


def _placed(x: Tensor, like: Tensor) -> Tensor:
    return x.to(device=like.device, dtype=like.dtype if x.is_floating_point() else None)


class _DelayedProgress:
    """A rich progress bar over `total` units that appears only once the work has run for `delay` seconds."""

    def __init__(self, total: int, *, enabled: bool, delay: float = 1.0):
        self.total, self.enabled, self.delay = total, enabled, delay
        self.done = 0
        self.description = ""
        self.bar: Progress | None = None

    def __enter__(self) -> _DelayedProgress:
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def describe(self, description: str) -> None:
        self.description = description

    def advance(self) -> None:
        self.done += 1
        if self.bar is None and self.enabled and time.monotonic() - self.start > self.delay:
            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=self.total)
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, description=self.description)
