"""The `gradient-doctor checkup` command: build a model from a user's factory, check it on a batch.

    $ gradient-doctor checkup mypkg.models:build --input-shape 32 784
    $ gradient-doctor checkup path/to/models.py:make_lstm --input-shape 200 8 16
    $ gradient-doctor checkup mypkg.models:gpt --input-shape 2 128 --vocab-size 50257 --json
    $ gradient-doctor checkup mypkg.models:build --batch batch.pt   # a tensor, tuple/list or dict

Exit status: 0 healthy, 1 warning or critical findings, 2 usage errors.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import pickle
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from rich.console import Console

from ..diagnose.checkup.preflight import checkup
from ..diagnose.render import render, treat_hint
from ..errors import CommandError
from .help import command_help


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("checkup", **command_help(
        "check a model for vanishing/exploding gradients on one batch",
        ["gradient-doctor checkup mypkg.models:build --input-shape 32 784",
         "gradient-doctor checkup models.py:make_lstm --input-shape 200 8 16       # a file, (T, B, features)",
         "gradient-doctor checkup mypkg.models:gpt --input-shape 2 128 --vocab-size 50257 --json",
         "gradient-doctor checkup mypkg.models:build --batch batch.pt            # a saved tensor, tuple or dict"],
        "Build the model with FACTORY, run one forward and backward pass on a batch and say, layer by layer, where "
        "the gradient is lost or gained; the model's weights are left as they were. Exit status 0 healthy, 1 "
        "warning or critical findings, 2 an error."))
    add_batch_arguments(parser)
    parser.add_argument("--trials", type=int, default=1,
                        help="forward+backward passes on the batch, with readout seeds SEED, SEED+1, ... and fresh "
                             "dropout masks; their squared norms are pooled (default 1)")
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON")


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """MODULE:FACTORY and where the batch comes from (--input-shape [--vocab-size] or --batch), and --seed."""
    parser.add_argument("factory", help="MODULE:FACTORY: a module path or .py file, and a function returning the model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input-shape", type=int, nargs="+", metavar="N", help="shape of a random input batch")
    source.add_argument("--batch", type=Path, help="a .pt file with the inputs (loaded with weights_only=True)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="random token ids in [0, V) instead of N(0, 1) floats (for --input-shape)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random batch (--input-shape) and of the first pass's readout (default 0)")


def run(args: argparse.Namespace, console: Console) -> int:
    model = load_model(args.factory)
    diagnosis = checkup(model, read_batch(args), trials=args.trials, seed=args.seed)
    if args.json:
        console.print_json(json.dumps(diagnosis.to_dict(), allow_nan=False))
    else:
        console.print(render(diagnosis, console.width, None))
        hint = treat_hint(diagnosis, treat_command(args))
        if hint:  # last, on a line of its own: the command to copy
            console.print(hint, soft_wrap=True, highlight=False, markup=False)
    return 0 if diagnosis.healthy else 1


def treat_command(args: argparse.Namespace) -> str:
    """The `gradient-doctor treat` command line for the model and batch this checkup used."""
    batch = f"--batch {shlex.quote(str(args.batch))}" if args.batch else \
        "--input-shape " + " ".join(map(str, args.input_shape)) + \
        (f" --vocab-size {args.vocab_size}" if args.vocab_size is not None else "")
    seed = f" --seed {args.seed}" if args.seed else ""
    return f"gradient-doctor treat {shlex.quote(args.factory)} {batch}{seed} --out treated.pt"


def load_model(spec: str) -> torch.nn.Module:
    """The model the factory named by "MODULE:FACTORY" returns; the current directory is importable, as under
    `python -m`, so `mymodels:build` works from the folder that holds mymodels.py."""
    with _current_directory_importable():
        factory = load_factory(spec)
        try:
            inspect.signature(factory).bind()
        except TypeError as err:
            raise CommandError(f"expected {spec} to be callable with no arguments ({err}); wrap it in a function "
                               "that takes none") from None
        except ValueError:  # no signature to inspect (a builtin): let the call tell
            pass
        try:
            model = factory()
        except Exception as err:
            raise CommandError(f"the factory {spec} raised {type(err).__name__}: {err}") from err
    if not isinstance(model, torch.nn.Module):
        raise CommandError(f"expected {spec} to return a torch.nn.Module; got {type(model).__name__}")
    return model


@contextlib.contextmanager
def _current_directory_importable() -> Iterator[None]:
    """The current directory first on sys.path while the factory is imported and called (as `python -m` has it)."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, here)
    try:
        yield
    finally:
        if added:
            sys.path.remove(here)


def read_batch(args: argparse.Namespace):
    """The batch the arguments of `add_batch_arguments` name: loaded from --batch, or random of --input-shape."""
    return load_batch(args.batch) if args.batch else random_batch(args.input_shape, args.vocab_size, args.seed)


def load_factory(spec: str) -> Callable:
    """The callable named by "MODULE:FACTORY" (MODULE a dotted import path, or a path to a .py file)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"expected MODULE:FACTORY such as mypkg.models:build or models.py:build; got {spec!r}")
    try:
        if module_name.endswith(".py"):
            found = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
            if found is None or not Path(module_name).is_file():
                raise CommandError(f"no such file: {module_name}")
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise CommandError(f"cannot import {module_name}: {err}") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise CommandError(f"expected {module_name} to define a callable {attr}; got {type(factory).__name__}")
    return factory


def load_batch(path: Path):
    """The inputs saved in `path` (a tensor, tuple/list or dict of tensors), loaded with weights_only=True."""
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        raise CommandError(f"cannot load the batch {path} (expected a torch.save'd tensor, tuple or dict): {err}") \
            from err


def random_batch(shape: list[int], vocab_size: int | None, seed: int) -> torch.Tensor:
    """N(0, 1) floats, or token ids in [0, vocab_size), of `shape`, from `seed`."""
    if any(n < 1 for n in shape):
        raise CommandError(f"expected a positive --input-shape; got {shape}")
    if vocab_size is not None and vocab_size < 1:
        raise CommandError(f"expected a positive --vocab-size (token ids are drawn from [0, V)); got {vocab_size}")
    generator = torch.Generator().manual_seed(seed)
    if vocab_size is not None:
        return torch.randint(0, vocab_size, shape, generator=generator)
    return torch.randn(shape, generator=generator)
