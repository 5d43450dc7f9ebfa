"""Step-time overhead of the Keras callback (`gradient_doctor.integrations.keras`, torch backend) in `model.fit`.

    $ python benchmarks/keras_overhead.py                  # a minute or two on 2 CPU cores
    $ python benchmarks/keras_overhead.py --quick          # smoke run, seconds; results go to a temp dir

The seeds' Keras net (DEPTH Dense layers of WIDTH units, ReLU, a 10-class softmax head; batch BATCH) is built twice
with the same weights. Each round fits each copy for one epoch of K steps on the same data, one with the callback at
its defaults (gradient norms every step; details, updates and activations every 50th step), one with none, in ABBA
order (which copy opens alternates between rounds) so that machine noise hits both alike; the first round is a
warm-up. Per round, the per-step time of each side (the `fit` call's wall time / K); reported: the medians over
rounds, their ratio, and the median and IQR of the per-round ratios. Results: a markdown table on stdout and
`keras-overhead-cpu.{json,md}` in `--out` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gradient_doctor.integrations.keras import GradientDoctorCallback  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEPTH, WIDTH, BATCH, STEPS, ROUNDS = 10, 512, 256, 50, 8


def build(width: int, depth: int) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((width,))]
                             + [keras.layers.Dense(width, activation="relu", kernel_initializer="he_normal")
                                for _ in range(depth)]
                             + [keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    return model


def seconds_per_step(model: keras.Model, x: np.ndarray, y: np.ndarray, callbacks: list, steps: int) -> float:
    start = time.perf_counter()
    model.fit(x, y, batch_size=len(x) // steps, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 64, batch 16, 4 rounds of 50 steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, batch, rounds = (64, 16, 4) if args.quick else (WIDTH, BATCH, ROUNDS)
    out = args.out or (Path(tempfile.mkdtemp()) if args.quick else RESULTS_DIR)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * STEPS, width)).astype("float32")
    y = rng.integers(0, 10, batch * STEPS)
    plain, watched = build(width, DEPTH), build(width, DEPTH)
    log_root = Path(tempfile.mkdtemp())
    times: list[tuple[float, float]] = []
    for r in range(rounds + 1):  # round 0: warm-up
        sides = ["plain", "watched"] if r % 2 else ["watched", "plain"]
        measured = {}
        for side in sides + sides[::-1]:  # ABBA
            callbacks = [GradientDoctorCallback(log_dir=log_root / f"r{r}-{len(measured)}", diagnose_on=())] \
                if side == "watched" else []
            t = seconds_per_step(watched if side == "watched" else plain, x, y, callbacks, STEPS)
            measured.setdefault(side, []).append(t)
        if r:
            times.append((statistics.mean(measured["plain"]), statistics.mean(measured["watched"])))
    plain_ms = statistics.median(p for p, _ in times) * 1e3
    watched_ms = statistics.median(w for _, w in times) * 1e3
    ratios = sorted(w / p for p, w in times)
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    row = {"model": f"{DEPTH} x Dense({width}, relu) + Dense(10, softmax), batch {batch}", "steps_per_round": STEPS,
           "rounds": rounds, "plain_ms": plain_ms, "watched_ms": watched_ms, "ratio_of_medians": watched_ms / plain_ms,
           "ratio_median": med, "ratio_iqr": [q1, q3], "rounds_times_s": times}
    meta = {"date": datetime.date.today().isoformat(), "keras": keras.__version__, "torch": torch.__version__,
            "threads": args.threads, "machine": platform.machine(), "python": platform.python_version()}
    table = ("| model | plain ms/step | watched ms/step | ratio of medians | per-round ratio, median [IQR] |\n"
             "|---|---:|---:|---:|---:|\n"
             f"| {row['model']} | {plain_ms:.2f} | {watched_ms:.2f} | {row['ratio_of_medians']:.3f} | "
             f"{med:.3f} [{q1:.3f}–{q3:.3f}] |\n")
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "keras-overhead-cpu.json").write_text(json.dumps({"meta": meta, "result": row}, indent=2))
    (out / "keras-overhead-cpu.md").write_text(f"# Keras callback overhead ({meta['date']}, keras {keras.__version__}, "
                                               f"torch {torch.__version__}, {args.threads} threads)\n\n{table}")


if __name__ == "__main__":
    main()
