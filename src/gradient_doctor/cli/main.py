"""The `gradient-doctor` command line.

    $ gradient-doctor demo              # a deep sigmoid MLP, watched while it trains
    $ gradient-doctor show runs/a       # the summary of a recorded run, then its diagnosis
    $ gradient-doctor report runs/a -o report.html   # an offline HTML report
    $ gradient-doctor checkup mypkg.models:build --input-shape 32 784   # one-batch preflight
    $ gradient-doctor treat mypkg.models:build --input-shape 32 784 --out treated.pt
    $ gradient-doctor lab he2015 --quick   # reproduce a claim of the literature (see docs/seed-claims.md)
    $ gradient-doctor --version

Exit status: 0 done (and healthy), 1 findings (checkup, treat), 2 an error, said in one line on stderr
(`--traceback` adds where an unexpected one came from).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from rich.console import Console

from .._version import __version__
from ..errors import GradientDoctorError
from .checkup import add_parser as add_checkup_parser
from .lab import add_parser as add_lab_parser
from .report import add_parser as add_report_parser
from .treat import add_parser as add_treat_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradient-doctor", description="Find, explain and treat vanishing and exploding gradients."
    )
    parser.add_argument("--version", action="version", version=f"gradient-doctor {__version__}")
    parser.add_argument("--traceback", action="store_true", help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    show = commands.add_parser("show", help="print the summary of a recorded run and its diagnosis")
    show.add_argument("log_dir", help="the log_dir given to gd.watch")

    demo = commands.add_parser("demo", help="watch a deep sigmoid MLP train and show where its gradient vanishes")
    demo.add_argument("--steps", type=int, default=1500, help="training steps per model (default 1500)")
    demo.add_argument("--out", default=None, help="directory for the run records (default: a temporary one)")
    demo.add_argument("--seed", type=int, default=0)

    add_checkup_parser(commands)
    add_report_parser(commands)
    add_treat_parser(commands)
    add_lab_parser(commands)
    return parser


def show_interventions(run, console: Console, limit: int = 20) -> None:
    """The guard's actions (gd.watch(..., guard=True)), one line each, the first `limit` of them."""
    actions = run.interventions
    if not actions:
        return
    console.print(f"The guard acted {len(actions)} time(s):")
    for action in actions[:limit]:
        console.print(f"  {action}", markup=False, highlight=False)
    if len(actions) > limit:
        console.print(f"  ... and {len(actions) - limit} more (run.interventions)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        if args.command == "show":
            from ..watch import load

            run = load(args.log_dir)
            console.print(run.summary())
            console.print(run.diagnose())
            show_interventions(run, console)
        elif args.command == "demo":
            from ..lab.demo import run_demo

            run_demo(steps=args.steps, out=args.out, seed=args.seed, console=console)
        elif args.command == "report":
            from .report import run as run_report

            return run_report(args, console)
        elif args.command == "checkup":
            from .checkup import run as run_checkup

            return run_checkup(args, console)
        elif args.command == "lab":
            from .lab import run as run_lab

            return run_lab(args, console)
        elif args.command == "treat":
            from .treat import run as run_treat

            return run_treat(args, console)
    except GradientDoctorError as err:
        return _error(str(err))
    except Exception as err:  # the user's model or batch, or a bug: exit 2 (an error), never 1 (findings)
        if args.traceback:
            traceback.print_exc()
        return _error(f"{type(err).__name__}: {err}" + ("" if args.traceback else " (--traceback shows where)"))
    return 0


def _error(message: str) -> int:
    """Say `message` as one line on stderr; the exit status of an error."""
    print(f"gradient-doctor: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
