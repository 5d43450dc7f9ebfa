"""The `gradient-doctor lab` command: run one experiment (or all), save JSON + markdown + plots, print the claims.

    $ gradient-doctor lab he2015 --quick --out lab-out
    $ gradient-doctor lab all --out benchmarks/results/lab
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..lab.experiment import EXPERIMENTS, run_experiment


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("lab", help="reproduce a claim about vanishing/exploding gradients on real data")
    parser.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds, not minutes")
    parser.add_argument("--out", type=Path, default=Path("lab-results"), help="directory for JSON, markdown, PNGs")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace, console: Console) -> int:
    names = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    for name in names:
        result = run_experiment(name, quick=args.quick, out=args.out, seed=args.seed, console=console)
        table = Table(title=f"{name} ({result.meta['seconds']} s) → {args.out / name}.md", title_justify="left")
        for column in ("claim", "measured", "verdict"):
            table.add_column(column, overflow="fold")
        for claim in result.claims:
            table.add_row(claim.claim, claim.measured, claim.verdict)
        console.print(table)
    return 0
