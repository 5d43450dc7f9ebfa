"""Reading a run while it trains: a reader loop of 1,000 reads during a 4,000-step run, counting failures.

    $ python benchmarks/reader_loop.py [--steps 4000] [--reads 1000] [--flush-every 10]

A writer subprocess trains a small MLP under `gd.watch(..., log_dir=...)`, flushing every `--flush-every` steps (each
flush one transaction), while this process loops: `gd.load(log_dir)`, then `run.diagnose()`, `run.steps`,
`run.history("grad_norm")` and `run.history("loss")`, and every tenth read `gradient-doctor show`. A read fails when
any of them raises, when the histories disagree with the steps in length, when the steps are not 0, 1, ... in order,
or when a read sees fewer steps than the one before it. The writer paces itself on the reader (step s waits until
s × reads / steps reads are done), so the reads are spread over the whole run, not bunched at one end of it.
Writes benchmarks/results/reader-loop.json and .md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import gradient_doctor as gd
from gradient_doctor.cli import main as cli_main

RESULTS = Path(__file__).parent / "results"

WRITER = textwrap.dedent("""
    import sys, time, torch
    from pathlib import Path
    from torch import nn
    import gradient_doctor as gd
    log_dir, progress, steps, reads, flush_every = sys.argv[1], Path(sys.argv[2]), *map(int, sys.argv[3:])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def reads_done() -> int:
        try:
            return int(progress.read_text() or 0)
        except (OSError, ValueError):
            return 0

    with gd.watch(model, opt, log_dir=log_dir, flush_every=flush_every, detail_every=5, activation_every=5,
                  update_every=5) as run:
        for step in range(steps):
            while reads_done() < step * reads // steps:  # keep pace with the reader
                time.sleep(0.001)
            loss = model(torch.randn(8, 16)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step(); run.step(loss=loss)
""")


def read_once(log_dir: Path, show: bool, last_seen: int) -> int:
    """One read of the live record; the number of steps it saw. Raises AssertionError when the read is inconsistent."""
    run = gd.load(log_dir)
    diagnosis = run.diagnose()
    steps, grad, loss = run.steps, run.history("grad_norm"), run.history("loss")
    assert grad.shape == (len(steps), len(run.layers)), f"grad_norm {grad.shape} for {len(steps)} steps"
    assert loss.shape == (len(steps),), f"loss {loss.shape} for {len(steps)} steps"
    assert np.array_equal(steps, np.arange(len(steps))), "steps not 0, 1, ... in order"
    assert len(steps) >= last_seen, f"{len(steps)} steps after a read of {last_seen}"
    assert isinstance(diagnosis.healthy, bool)
    if show:
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["show", str(log_dir)]) == 0, "gradient-doctor show failed"
    return len(steps)


def run_benchmark(steps: int, reads: int, flush_every: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        log_dir, progress = Path(folder) / "run", Path(folder) / "reads"
        progress.write_text("0")
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log_dir), str(progress), str(steps), str(reads),
                                   str(flush_every)])
        failures: list[str] = []
        seen: list[int] = []
        started = time.perf_counter()
        try:
            while not (log_dir / "run.db").exists():
                if writer.poll() is not None:
                    raise SystemExit(f"the writer exited ({writer.returncode}) before creating its record")
                time.sleep(0.01)
            read_times = []
            while writer.poll() is None:
                tic = time.perf_counter()
                try:
                    seen.append(read_once(log_dir, len(read_times) % 10 == 0, seen[-1] if seen else 0))
                except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                    failures.append(f"{type(err).__name__}: {err}")
                read_times.append(time.perf_counter() - tic)
                progress.write_text(str(len(read_times)))
            code = writer.wait()
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        final = len(gd.load(log_dir).steps)
    during = sum(1 for n in seen if n < final)
    return {
        "steps": steps, "flush_every": flush_every, "reads_asked": reads, "reads": len(read_times),
        "reads_while_training": during, "failures": len(failures), "failure_kinds": sorted(set(failures))[:10],
        "distinct_step_counts_seen": len(set(seen)), "writer_exit": code, "final_steps": final,
        "median_read_ms": round(1000 * float(np.median(read_times)), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def write(result: dict) -> None:
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": "python benchmarks/reader_loop.py", "machine": f"{platform.machine()}, "
            f"{torch.get_num_threads()} torch threads", "torch": torch.__version__, "gradient_doctor": gd.__version__,
            "python": platform.python_version()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reader-loop.json").write_text(json.dumps({"meta": meta, "result": result}, indent=2) + "\n")
    r = result
    (RESULTS / "reader-loop.md").write_text(textwrap.dedent(f"""\
        # Reading a run while it trains

        - date: {meta['date']}
        - command: `{meta['command']}`
        - torch {meta['torch']}, gradient-doctor {meta['gradient_doctor']}, Python {meta['python']}
        - a writer subprocess trains an MLP (16-32-32-1) for {r['steps']:,} steps, flushing every {r['flush_every']}
          steps; this process loops `gd.load` + `diagnose()` + `steps` + two histories (+ `gradient-doctor show`
          every tenth read), checking each read for consistency (see the script's docstring)

        | reads | while training | failures | distinct step counts seen | final steps | median read |
        |---:|---:|---:|---:|---:|---:|
        | {r['reads']:,} | {r['reads_while_training']:,} | {r['failures']} | {r['distinct_step_counts_seen']} | \
{r['final_steps']:,} | {r['median_read_ms']} ms |
        """))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--reads", type=int, default=1000)
    parser.add_argument("--flush-every", type=int, default=10)
    args = parser.parse_args(argv)
    result = run_benchmark(args.steps, args.reads, args.flush_every)
    write(result)
    print(json.dumps(result, indent=2))
    return 0 if result["failures"] == 0 and result["writer_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
