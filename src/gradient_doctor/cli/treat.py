"""The `gradient-doctor treat` command: check a user's model on a batch, treat it, save the treated weights.

    $ gradient-doctor treat mypkg.models:build --input-shape 32 784 --out treated.pt
    $ gradient-doctor treat models.py:make_rnn --input-shape 16 100 2 --remedies to_lstm,forget_gate_bias

It prints what was kept or rolled back and the architecture diff: the saved state_dict belongs to the treated
architecture, so carry the diff into the model's code before loading it. Exit status: 0 healthy after treatment,
1 problems remain, 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console

from .._json import json_safe
from ..errors import CommandError
from ..treat.treatment import treat
from .checkup import add_batch_arguments, load_model, read_batch
from .help import command_help
from .paths import writable_file


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("treat", **command_help(
        "treat a model's vanishing/exploding gradients, verified on a batch",
        ["gradient-doctor treat mypkg.models:build --input-shape 32 784 --out treated.pt",
         "gradient-doctor treat models.py:make_rnn --input-shape 16 100 2 --remedies to_lstm,forget_gate_bias",
         "gradient-doctor treat mypkg.models:build --batch batch.pt --json"],
        "Check the model on a batch, try the remedies its findings rank (or --remedies) cheapest first on a copy, "
        "keep each only when checkup on the batch says the gradient budget improved, and save the treated "
        "state_dict. Carry the printed architecture diff into your code before loading it. Exit status 0 healthy "
        "after treatment, 1 problems remain, 2 an error."))
    add_batch_arguments(parser)
    parser.add_argument("--remedies", default=None,
                        help="comma-separated remedy names to try (default: those the checkup's findings rank)")
    parser.add_argument("--out", type=Path, default=Path("treated.pt"), help="where to save the treated state_dict")
    parser.add_argument("--json", action="store_true", help="print the treatment as JSON")


def run(args: argparse.Namespace, console: Console) -> int:
    writable_file(args.out, "--out")  # before the treatment, not after it
    model = load_model(args.factory)
    inputs = read_batch(args)
    source = [n.strip() for n in args.remedies.split(",") if n.strip()] if args.remedies else None
    try:
        treatment = treat(model, source, inputs, seed=args.seed)
    except (TypeError, ValueError) as err:
        raise CommandError(str(err)) from err
    torch.save(treatment.model.state_dict(), args.out)
    if args.json:
        summary = {"applied": treatment.applied, "rejected": treatment.rejected, "diff": treatment.diff,
                   "before": treatment.before.to_dict(), "after": treatment.after.to_dict(), "out": str(args.out)}
        console.print_json(json.dumps(json_safe(summary), allow_nan=False))
    else:
        console.print(treatment)
        console.print(f"treated state_dict saved to {args.out}")
    return 0 if treatment.after.healthy else 1
