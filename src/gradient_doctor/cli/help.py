"""Help text shared by the commands: a description wrapped once, and an examples block whose lines argparse keeps.

    >>> parser = commands.add_parser("show", **command_help("print a run", ["gradient-doctor show runs/a"]))
"""

from __future__ import annotations

import argparse
import textwrap

#: Columns the descriptions are wrapped to (argparse leaves a raw description as written).
WIDTH = 88


def command_help(summary: str, examples: list[str], description: str | None = None) -> dict:
    """The keyword arguments of `add_parser` for a command: `summary` in the command list, `description` (default
    `summary`) atop its --help, and an "examples" epilog with one command line each (a `# comment` may follow)."""
    return {"help": summary, "description": textwrap.fill(description or summary, WIDTH),
            "epilog": examples_epilog(examples), "formatter_class": argparse.RawDescriptionHelpFormatter}


def examples_epilog(examples: list[str]) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in examples)
