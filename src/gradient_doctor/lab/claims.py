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
run measured and the verdict that follows from the numbers (holds / holds with conditions / does not hold).
Budgets, datasets and deviations from the papers are in each experiment's notes
(`benchmarks/results/lab/<experiment>.md`). Regenerate with
`python -m gradient_doctor.lab.claims benchmarks/results/lab > docs/seed-claims.md` after
`gradient-doctor lab all --out benchmarks/results/lab`.
"""


def claims_table(results: Path) -> str:
    """Markdown: the header, then one row per claim of every experiment saved under `results`."""
    lines = [HEADER, "| claim | experiment (command) | measured | verdict |", "|---|---|---|---|"]
    missing = []
    for name in EXPERIMENTS:
        path = results / f"{name}.json"
        if not path.exists():
            missing.append(name)
            continue
        saved = json.loads(path.read_text())
        meta = saved["meta"]
        where = f"[{name}](../benchmarks/results/lab/{name}.md) (`{meta['command']}`, {meta['date']}, {meta['seconds']} s)"
        lines += [f"| {c['claim']} | {where} | {c['measured']} | **{c['verdict']}** |" for c in saved["claims"]]
    if missing:
        lines += ["", f"Not yet run in full: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(claims_table(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/lab")))
