"""The `gradient-doctor` command line.

    $ gradient-doctor demo              # a deep sigmoid MLP, watched while it trains
    $ gradient-doctor show runs/a       # the summary of a recorded run, then its diagnosis
    $ gradient-doctor report runs/a -o report.html   # an offline HTML report
    $ gradient-doctor checkup mypkg.models:build --input-shape 32 784   # one-batch preflight
    $ gradient-doctor treat mypkg.models:build --input-shape 32 784 --out treated.pt
    $ gradient-doctor lab he2015 --quick   # reproduce a claim of the literature (see docs/seed-claims.md)
    $ gradient-doctor --version
    $ python -m gradient_doctor demo     # the same, where the scripts of the environment are not on PATH

Exit status: 0 done (and healthy), 1 findings (checkup, treat), 2 an error, said in one line on stderr
(`--traceback` adds where an unexpected one came from).
"""

from __future__ import annotations

import argparse
import sys
import traceback

from rich.console import Console

from .._console import text_width
from .._version import __version__
from ..errors import GradientDoctorError
from .checkup import add_parser as add_checkup_parser
from .help import command_help, examples_epilog
from .lab import add_parser as add_lab_parser
from .report import add_parser as add_report_parser
from .treat import add_parser as add_treat_parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradient-doctor", description="Find, explain and treat vanishing and exploding gradients.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=examples_epilog([
            "gradient-doctor demo                     # the whole story on MNIST-1D, reports in ./gradient-doctor-demo",
            "gradient-doctor COMMAND --help           # each command's options and examples",
            "python -m gradient_doctor demo           # the same, when the environment's scripts are not on PATH",
        ]) + "\n\nexit status: 0 done (and healthy), 1 findings (checkup, treat), 2 an error",
    )
    parser.add_argument("--version", action="version", version=f"gradient-doctor {__version__}")
    parser.add_argument("--traceback", action="store_true", help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    show = commands.add_parser("show", **command_help(
        "print the summary of a recorded run and its diagnosis",
        ["gradient-doctor show runs/a                       # a log_dir given to gd.watch",
         "gradient-doctor show gradient-doctor-demo/untreated   # after gradient-doctor demo"]))
    show.add_argument("log_dir", help="the log_dir given to gd.watch (a directory holding run.db)")

    demo = commands.add_parser("demo", **command_help(
        "watch a deep sigmoid MLP train and show where its gradient vanishes",
        ["gradient-doctor demo                      # 1500 steps per model, reports in ./gradient-doctor-demo",
         "gradient-doctor demo --steps 300          # a quicker, rougher run",
         "gradient-doctor demo --out /tmp/demo      # somewhere else"],
        "Check a 12-layer sigmoid MLP on MNIST-1D (generated locally), train it watched, diagnose the run, treat "
        "the model and train it again with the same budget; write HTML reports of both runs and of the treatment. "
        "A re-run replaces the previous one's records and reports."))
    demo.add_argument("--steps", type=int, default=1500, help="training steps per model (default 1500)")
    demo.add_argument("--out", default="gradient-doctor-demo",
                      help="directory for the run records and HTML reports, replaced on a re-run (default "
                           "./gradient-doctor-demo)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the model's initial weights and the batch order (default 0)")

    add_checkup_parser(commands)
    add_report_parser(commands)
    add_treat_parser(commands)
    add_lab_parser(commands)
    return parser


def show(log_dir: str, console: Console) -> None:
    """The run's summary, its diagnosis, the guard's actions, and last, unwrapped, the call that treats it."""
    from ..diagnose.render import render, treat_hint
    from ..watch import load

    run = load(log_dir)
    console.print(run.summary())
    diagnosis = run.diagnose()
    console.print(render(diagnosis, console.width, None))
    show_interventions(run, console)
    hint = treat_hint(diagnosis, f"gd.treat(model, gd.diagnose({str(log_dir)!r}), inputs=x)")
    if hint:
        console.print(hint, soft_wrap=True, highlight=False, markup=False)


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
    console = Console(width=text_width())  # the terminal's width, or 100 columns in a log or pipe
    try:
        if args.command == "show":
            show(args.log_dir, console)
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
