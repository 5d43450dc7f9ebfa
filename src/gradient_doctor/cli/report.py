"""The `gradient-doctor report` command: a recorded run as an offline HTML file (and PNGs, TensorBoard).

    $ gradient-doctor report runs/a -o report.html
    $ gradient-doctor report runs/a --png plots/ --tensorboard tb/a

Without -o the page is written to LOG_DIR/report.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..report.html import report
from ..watch import load
from .help import command_help
from .paths import writable_file


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("report", **command_help(
        "write an offline HTML report of a recorded run",
        ["gradient-doctor report runs/a -o report.html",
         "gradient-doctor report runs/a --png plots/ --tensorboard tb/a     # also PNGs and TensorBoard events"]))
    parser.add_argument("log_dir", help="the log_dir given to gd.watch")
    parser.add_argument("-o", "--output", type=Path, default=None, help="the HTML file (default LOG_DIR/report.html)")
    parser.add_argument("--png", type=Path, default=None, metavar="DIR",
                        help="also write every plot as DIR/KIND.png (needs the [plots] extra)")
    parser.add_argument("--tensorboard", type=Path, default=None, metavar="DIR",
                        help="also export the run as TensorBoard events (needs the [tensorboard] extra)")


def run(args: argparse.Namespace, console: Console) -> int:
    recorded = load(args.log_dir)
    path = report(recorded, writable_file(args.output or Path(args.log_dir) / "report.html", "-o/--output"))
    console.print(f"report: {path}")
    if args.png is not None:
        from ..report.plots import KINDS, plot

        args.png.mkdir(parents=True, exist_ok=True)
        for kind in KINDS:
            plot(recorded, kind, args.png / f"{kind}.png")
        console.print(f"plots: {args.png}/{{{','.join(KINDS)}}}.png")
    if args.tensorboard is not None:
        from ..report.tensorboard import to_tensorboard

        console.print(f"tensorboard: {to_tensorboard(recorded, args.tensorboard)}")
    return 0
