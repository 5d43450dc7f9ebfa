"""The seed material's claims, collected from saved lab results into one markdown table (docs/seed-claims.md).

    $ python -m gradient_doctor.lab.claims benchmarks/results/lab > docs/seed-claims.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .experiment import EXPERIMENTS

HEADER = """# The seed material's claims, measured

Each row is one claim about vanishing and exploding gradients, the lab experiment that tests it, what the full
run measured and the verdict that follows from those numbers. Budgets, datasets, the papers' settings and where
the lab deviates from them are in each experiment's notes (`benchmarks/results/lab/<experiment>.md`).

Verdicts: **holds** — every configuration the claim names passes its test (stated in the row) in every seed;
**holds with conditions** — some do, and the row names which (the conditions); **does not hold** — none do, or
the claim's premise is not met (e.g. nothing exploded for clipping to handle); **too few runs to judge** — the
row was judged from fewer seeds than the full run uses (only `--quick` runs say this). Rows starting with
"Condition" state a paper's caveat measured as its own row. *seeds* is the number of seeds per configuration.

Regenerate with `python -m gradient_doctor.lab.claims benchmarks/results/lab > docs/seed-claims.md` after
`gradient-doctor lab all --out benchmarks/results/lab`.
"""


def claims_table(results: Path) -> str:
    """Markdown: the header, then one row per claim of every experiment saved under `results`."""
    lines = [HEADER, "| claim | experiment (command) | measured | verdict | seeds |", "|---|---|---|---|---|"]
    missing, seconds, meta = [], 0.0, None
    for name in EXPERIMENTS:
        path = results / f"{name}.json"
        if not path.exists():
            missing.append(name)
            continue
        saved = json.loads(path.read_text())
        meta = saved["meta"]
        seconds += meta["seconds"]
        where = f"[{name}](../benchmarks/results/lab/{name}.md) (`{meta['command']}`, {meta['date']}, {meta['seconds']} s)"
        lines += [f"| {c['claim']} | {where} | {c['measured']} | **{c['verdict']}** | {c.get('runs', 1)} |"
                  for c in saved["claims"]]
    if meta is not None:
        lines += ["", f"The experiments' own run times add up to {seconds / 60:.1f} min ({meta['machine']}, torch "
                  f"{meta['torch']}; one thread each, on a machine shared with other work, so times carry its noise)."]
    if missing:
        lines += ["", f"Not yet run in full: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(claims_table(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/lab")))
