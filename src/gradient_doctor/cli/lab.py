"""The `gradient-doctor lab` command: run experiments (one, several or all), save JSON + markdown + plots into --out,
print each claim with its verdict.

    $ gradient-doctor lab he2015 --quick --out lab-out
    $ gradient-doctor lab residual batchnorm clipping
    $ gradient-doctor lab all --out benchmarks/results/lab

On a terminal each experiment draws progress bars; elsewhere (a log file, CI) it prints a line per finished
configuration instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import CommandError
from ..lab.experiment import EXPERIMENTS, run_experiment

DEFAULT_OUT = Path("lab-results")

EXAMPLES = """examples:
  gradient-doctor lab chain-rule                      # seconds: the chain rule's product on a real 3-layer net
  gradient-doctor lab he2015 --quick --out lab-out    # small version; seed-based verdicts say 'too few runs to judge'
  gradient-doctor lab residual batchnorm clipping     # several experiments, full size, into ./lab-results/
  gradient-doctor lab all --out benchmarks/results/lab   # the whole set, as docs/seed-claims.md quotes it
  nohup gradient-doctor lab all > lab.log 2>&1 &      # not a terminal: one line per finished configuration

experiments: """ + ", ".join(EXPERIMENTS)


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "lab", help="reproduce a claim about vanishing/exploding gradients on real data",
        description="Run lab experiments: each trains small nets on generated MNIST-1D, scikit-learn's digits or "
                    "synthetic sequences, judges the seed material's claims from its own numbers and writes "
                    "<out>/<experiment>.json, .md and plots.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                        help="one or more of the experiments listed below, or 'all'")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (seconds, not minutes); claims judged from fewer seeds than the full run "
                             "say 'too few runs to judge'")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for the results: <experiment>.json, .md and PNGs (default: ./lab-results/)")
    parser.add_argument("--seed", type=int, default=0,
                        help="first seed; experiments with several seeds use seed, seed+1, ... (default: 0)")


def selected(names: list[str]) -> tuple[str, ...]:
    """The experiments to run, in the order given ('all': every one, in EXPERIMENTS order).

    >>> selected(["residual", "he2015"])
    ('residual', 'he2015')
    """
    if "all" in names:
        return EXPERIMENTS
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise CommandError(f"unknown experiment(s) {unknown}; expected some of {list(EXPERIMENTS)} or 'all'")
    return tuple(dict.fromkeys(names))


def run(args: argparse.Namespace, console: Console) -> int:
    for name in selected(args.experiments):
        result = run_experiment(name, quick=args.quick, out=args.out, seed=args.seed, console=console)
        table = Table(title=f"{name} ({result.meta['seconds']} s) → {args.out / name}.md", title_justify="left")
        for column in ("claim", "measured", "verdict"):
            table.add_column(column, overflow="fold")
        for claim in result.claims:
            table.add_row(claim.claim, claim.measured, claim.verdict)
        console.print(table)
    return 0
