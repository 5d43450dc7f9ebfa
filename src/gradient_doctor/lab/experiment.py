"""What every lab experiment gets and gives back, and the runner that saves it.

    >>> result = run_experiment("he2015", quick=True, out=Path("lab-out"))   # lab-out/he2015.{json,md}, PNGs
    >>> result.claims[0].verdict           # one seed where the full run has three
    'too few runs to judge'

An experiment is a module in lab/experiments/ with `NAME`, `SUMMARY` (one line) and `run(ctx: Context) -> Result`.
`quick=True` is the small, seconds-long version the test suite runs (it must still measure the claim, on less);
the full version is what `docs/seed-claims.md` quotes. Everything is seeded from `ctx.seed`. A claim judged from
fewer seeds than the full version uses says TOO_FEW (`Claim.runs`, `Claim.needed`), never a verdict its own
numbers could not carry. `ctx.finished(...)` after each configuration prints a line when not on a terminal.
"""

from __future__ import annotations

import datetime
import importlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress

from .._json import json_safe
from ..errors import InvalidValue

EXPERIMENTS = ("chain-rule", "depth-sweep", "glorot2010", "he2015", "residual", "highway", "batchnorm", "signs",
               "recurrent", "clipping", "exploding", "pretraining", "depth-limit")
TOO_FEW = "too few runs to judge"
VERDICTS = ("holds", "holds with conditions", "does not hold", TOO_FEW)


@dataclass
class Context:
    quick: bool
    seed: int
    out: Path
    progress: Progress
    console: Console
    name: str = "lab"

    def finished(self, what: str) -> None:
        """Say that one configuration finished, as a line, when the console is not a terminal (a log file, CI):
        the progress bars only draw on a terminal.

        >>> ctx.finished("30 layers, he init, seed 1")      # lab he2015: finished 30 layers, he init, seed 1
        """
        if not self.console.is_terminal:
            self.console.print(f"lab {self.name}: finished {what}", markup=False, highlight=False)

    def pyplot(self, name: str) -> tuple[Any, Path] | None:
        """(matplotlib.pyplot on the Agg backend, where to save the PNG `name`), or None when matplotlib is not
        installed (plots are optional).

        >>> plotting = ctx.pyplot("he2015")
        >>> if plotting is not None: plt, path = plotting
        """
        try:
            import matplotlib
        except ImportError:
            return None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt, self.out / f"{name}.png"


@dataclass
class Claim:
    """One claim and its verdict. A verdict needs `needed` independent runs (seeds) per configuration, the full
    version's number; judged from fewer (`runs`, the quick version) it becomes TOO_FEW, whatever the numbers
    suggest, and `measured` says so.

    >>> Claim("He init converges", "he: 1/1 runs converged", "holds", runs=1, needed=3).verdict
    'too few runs to judge'
    """

    claim: str  # the seed material's claim, in its words where possible
    measured: str  # what was measured, with numbers
    verdict: str  # one of VERDICTS
    runs: int = 1  # seeds per configuration behind the verdict
    needed: int = 1  # seeds per configuration a verdict needs (the full version's)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InvalidValue(f"verdict must be one of {VERDICTS}; got {self.verdict!r}")
        if self.runs < self.needed and self.verdict != TOO_FEW:
            self.measured += (f" [{self.runs} run(s) per configuration, {self.needed} needed: the numbers would "
                              f"say '{self.verdict}']")
            self.verdict = TOO_FEW


@dataclass
class Result:
    rows: list[dict[str, Any]]  # the experiment's table, one dict per row (same keys in each)
    claims: list[Claim]
    notes: list[str] = field(default_factory=list)  # budgets, deviations from the paper, caveats
    meta: dict[str, Any] = field(default_factory=dict)  # filled by run_experiment


def run_experiment(name: str, *, quick: bool = False, out: Path | str = "lab-results", seed: int = 0,
                   console: Console | None = None) -> Result:
    """Run the experiment `name` (one of EXPERIMENTS), save `<out>/<name>.json` and `.md`, return its Result.

    >>> run_experiment("chain-rule", out="lab-results").claims[0].verdict
    """
    if name not in EXPERIMENTS:
        raise InvalidValue(f"unknown experiment {name!r}; expected one of {list(EXPERIMENTS)}")
    module = importlib.import_module(f".experiments.{name.replace('-', '_')}", __package__)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console()
    start = time.perf_counter()
    with Progress(console=console, transient=True) as progress:
        result = module.run(Context(quick, seed, out, progress, console, name))
    result.meta = {
        "experiment": name, "quick": quick, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
        "command": f"gradient-doctor lab {name}{' --quick' if quick else ''} --seed {seed}",
        "date": datetime.date.today().isoformat(), "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
    }
    (out / f"{name}.json").write_text(json.dumps(json_safe(asdict(result)), indent=1, allow_nan=False))
    (out / f"{name}.md").write_text(to_markdown(name, module.SUMMARY, result))
    return result


def to_markdown(name: str, summary: str, result: Result) -> str:
    """The result as markdown: the command and machine, the claims with verdicts, the table, the notes."""
    m = result.meta
    lines = [f"# {name}: {summary}", "", f"`{m['command']}` — {m['date']}, {m['machine']}, torch {m['torch']}, "
             f"{m['seconds']} s.", "", "| claim | measured | verdict | seeds |", "|---|---|---|---|"]
    lines += [f"| {c.claim} | {c.measured} | {c.verdict} | {c.runs} (needs {c.needed}) |" for c in result.claims]
    if result.rows:
        keys = list(result.rows[0])
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(row.get(k)) for k in keys) + " |" for row in result.rows]
    if result.notes:
        lines += [""] + [f"- {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
