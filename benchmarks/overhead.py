"""Step-time overhead of `gd.watch`, and of its peers: median step time watched / plain, for three models.

    $ python benchmarks/overhead.py                  # full run on CPU, a few minutes on 2 cores
    $ python benchmarks/overhead.py --quick          # smoke run, seconds; results go to a temp dir
    $ python benchmarks/overhead.py --device cuda --threads 4 --models mlp cnn
    $ python benchmarks/overhead.py --peers --models mlp cnn --steps 10 --rounds 4   # peers, every 1 and 10 steps

For each model and each watch configuration, two identical copies of the model are built (each
with its own optimizer and the same fixed batch): one is watched for the whole comparison, the other
is never watched. After a warm-up round, R rounds each run K steps on each copy, the two copies
taking turns every C steps in ABBA order (P W W P ...; which copy opens alternates between rounds),
so that machine noise (other tenants, frequency changes) hits both sides alike. C is 1 on the CPU;
on CUDA it is K, so that the device is synchronised only at the ends of a K-step block and host work
still overlaps device work as in real training. Reported per configuration:

* the median over rounds of the per-step time of each side, and the ratio of those medians;
* the median and interquartile range over rounds of the per-round ratio watched / plain, the
  estimate to trust on a noisy machine, since each round's two sides share the same time window;
* the ratio of total times, which also carries costs that land in only some rounds (the record's
  flush every `flush_every` steps, which medians over rounds shorter than that do not see).

K is a multiple of the longest default cadence (50: details, updates and activations every 50th
step) so that every round holds the same mix of watched steps. The watched loop calls `run.step(loss=loss)`, as
the documented usage does. Results: a markdown table on stdout, and JSON (with every round's times)
and markdown files `overhead-<device>.{json,md}` in `--out` (default `benchmarks/results`).

With `--peers`, the watch configurations are other tools (`benchmarks/peers.py`: wandb.watch, TensorBoard
histograms, Lightning's grad_norm, traintools, Cockpit, and gd.watch with every cadence set to N), each run
every N steps for each N of `--cadences`, compared with the plain copy in the same way; K must then hold whole
cycles of the cadences. A peer that is not installed, fails to import or does not support the model gets a
row saying so and why. Files: `overhead-peers-<device>.{json,md}`.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import inspect
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

import gradient_doctor as gd

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.overhead
    from peers import PEERS, TEMP_DIR, Attach, Attached, Peer, PeerUnavailable, gd_attach, peer_version
except ImportError:
    from benchmarks.peers import PEERS, TEMP_DIR, Attach, Attached, Peer, PeerUnavailable, gd_attach, peer_version

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# the longest default period of gd.watch's groups: a round's K steps are whole multiples of it, so
# every round holds the same mix of measured steps
CADENCE_CYCLE = math.lcm(*(
    p.default for name, p in inspect.signature(gd.watch).parameters.items()
    if name.endswith("every") and name != "flush_every" and p.default
))


# -- models --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    """A model to time: how to build it (with its batch), its optimizer, and how long to time it."""

    name: str
    description: str
    build: Callable[[bool], tuple[nn.Module, Tensor, Tensor]]  # quick -> (model, inputs, targets)
    optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer]
    steps: int  # K: steps per side per round
    rounds: int  # R: timed rounds


def build_mlp(quick: bool) -> tuple[nn.Module, Tensor, Tensor]:
    """20 × (Linear 512→512 + ReLU), then a 10-class head; batch 256 (quick: width 64, batch 16)."""
    width, batch = (64, 16) if quick else (512, 256)
    layers: list[nn.Module] = []
    for _ in range(20):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 10)), torch.randn(batch, width), torch.randint(0, 10, (batch,))


def build_cnn(quick: bool) -> tuple[nn.Module, Tensor, Tensor]:
    """3 × (Conv 3×3 + BatchNorm + in-place ReLU + MaxPool), then a 10-class head; 32×32×3, batch 64
    (quick: a quarter of the channels, batch 4)."""
    c, batch = (8, 4) if quick else (32, 64)

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

    features = [*block(3, c), *block(c, 2 * c), *block(2 * c, 4 * c)]
    model = nn.Sequential(*features, nn.Flatten(), nn.Linear(4 * c * 4 * 4, 10))
    return model, torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))


class TinyEncoder(nn.Module):
    """Token embedding + learned positions, a pre-norm TransformerEncoder, mean pooling, 10 classes."""

    def __init__(self, vocab: int = 1000, seq: int = 64, d_model: int = 256, layers: int = 4, heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.zeros(seq, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 10)

    def forward(self, tokens: Tensor) -> Tensor:
        hidden = self.embed(tokens) + self.position[: tokens.shape[1]]
        return self.head(self.encoder(hidden).mean(dim=1))


def build_transformer(quick: bool) -> tuple[nn.Module, Tensor, Tensor]:
    """TransformerEncoder, d_model 256, 4 layers, 4 heads, feed-forward 1024; seq 64, batch 16
    (quick: d_model 64, seq 16, batch 4)."""
    d_model, seq, batch = (64, 16, 4) if quick else (256, 64, 16)
    tokens, targets = torch.randint(0, 1000, (batch, seq)), torch.randint(0, 10, (batch,))
    return TinyEncoder(seq=seq, d_model=d_model), tokens, targets


WORKLOADS = {
    "mlp": Workload("mlp", "MLP 20×512 + ReLU, batch 256, SGD", build_mlp,
                    lambda p: torch.optim.SGD(p, lr=0.01), steps=CADENCE_CYCLE, rounds=10),
    "cnn": Workload("cnn", "CNN 3×(conv+BN+ReLU), 32×32×3, batch 64, SGD momentum", build_cnn,
                    lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), steps=CADENCE_CYCLE, rounds=10),
    "transformer": Workload("transformer", "Transformer encoder d256 L4 H4 FF1024 pre-norm, seq 64, batch 16, Adam",
                            build_transformer, lambda p: torch.optim.Adam(p, lr=1e-4), steps=CADENCE_CYCLE,
                            rounds=3),
}

# -- watch configurations ------------------------------------------------------------------------
#: name -> gd.watch keyword arguments; TEMP_DIR stands for a fresh temporary directory.
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "defaults + log_dir": {"log_dir": TEMP_DIR},
    "everything every step": {"every": 1, "detail_every": 1, "update_every": 1, "activation_every": 1},
    "gradient norms only": {"detail_every": 0, "update_every": 0, "activations": False},
    "defaults + guard": {"guard": True},
}


# -- timing --------------------------------------------------------------------------------------
class Trainer:
    """One model copy, its optimizer and its fixed batch; `timed(k)` times k training steps.

    >>> plain, watched = make_pair(WORKLOADS["mlp"], torch.device("cpu"), quick=True, seed=0)
    >>> plain.timed(50)         # seconds; with `attached` set, each step runs the peer's hooks
    0.021
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, inputs: Tensor, targets: Tensor,
                 device: torch.device):
        self.model, self.optimizer, self.inputs, self.targets = model, optimizer, inputs, targets
        self.device = device
        self.attached: Attached | None = None  # set while watched: the watcher's hooks in the step

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        outputs = self.model(self.inputs)
        if self.attached is None:
            loss = nn.functional.cross_entropy(outputs, self.targets)
            loss.backward()
            self.optimizer.step()
        else:
            loss = self.attached.loss_backward(outputs, self.targets)
            self.optimizer.step()
            self.attached.after_step(loss)

    def timed(self, steps: int) -> float:
        """Wall-clock seconds for `steps` steps, device work included."""
        _synchronize(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _synchronize(self.device)
        return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_pair(workload: Workload, device: torch.device, quick: bool, seed: int) -> tuple[Trainer, Trainer]:
    """Two identical copies of the workload's model, each with its own optimizer (plain, to-be-watched).

    >>> plain, watched = make_pair(WORKLOADS["cnn"], torch.device("cpu"), quick=True, seed=0)
    """
    torch.manual_seed(seed)
    model, inputs, targets = workload.build(quick)
    model.to(device).train()
    inputs, targets = inputs.to(device), targets.to(device)
    twin = copy.deepcopy(model)
    return (
        Trainer(model, workload.optimizer(list(model.parameters())), inputs, targets, device),
        Trainer(twin, workload.optimizer(list(twin.parameters())), inputs, targets, device),
    )


def one_round(plain: Trainer, watched: Trainer, steps: int, chunk: int, watched_first: bool) -> tuple[float, float]:
    """K = `steps` steps per side, alternating sides every `chunk` steps in ABBA order; (plain s, watched s).

    >>> one_round(plain, watched, steps=50, chunk=1, watched_first=False)      # P W W P P W ...
    (0.52, 0.55)
    """
    totals = {id(plain): 0.0, id(watched): 0.0}
    first, second = (watched, plain) if watched_first else (plain, watched)
    for i in range(steps // chunk):
        for trainer in (first, second) if i % 2 == 0 else (second, first):
            totals[id(trainer)] += trainer.timed(chunk)
    return totals[id(plain)], totals[id(watched)]


def compare(workload: Workload, config: str, device: torch.device, *, quick: bool, steps: int, chunk: int,
            rounds: int, seed: int, attach: Attach | None = None, cadence: int = 1) -> dict[str, Any]:
    """Time one watch configuration against the plain model; returns one result row. The watched
    copy gets `attach(model, optimizer, cadence, tmp)` (default: gd.watch with `CONFIGS[config]`).

    >>> row = compare(WORKLOADS["mlp"], "defaults", torch.device("cpu"), quick=True, steps=50, chunk=1,
    ...               rounds=2, seed=0)
    >>> row["round_ratio_median"]
    1.04
    """
    attach = attach or gd_attach(CONFIGS[config])
    plain, watched = make_pair(workload, device, quick, seed)
    with tempfile.TemporaryDirectory(prefix="gd-overhead-") as tmp:
        watched.attached = attach(watched.model, watched.optimizer, cadence, Path(tmp))
        try:
            one_round(plain, watched, steps, chunk, False)  # warm-up; leaves the watched step count on a cycle
            times = [one_round(plain, watched, steps, chunk, r % 2 == 1) for r in range(rounds)]
        finally:
            watched.attached.close()
            watched.attached = None
    return summarize(workload.name, config, steps, chunk, [p for p, _ in times], [w for _, w in times])


def peer_row(workload: Workload, peer: Peer, cadence: int | None, device: torch.device, **timing: Any
             ) -> dict[str, Any]:
    """Time one peer at one cadence (None: the uncadenced plain baseline) against the plain model;
    a peer that cannot run gives a row with its status and reason instead of times.

    >>> peer_row(WORKLOADS["cnn"], PEERS["cockpit-economy"], 10, cpu, **timing)["status"]   # in-place ReLU
    'unsupported'
    """
    label = peer.name if cadence is None else f"{peer.name}, every {cadence}"
    about = {"peer": peer.name, "cadence": cadence}
    try:
        row = compare(workload, label, device, attach=peer.attach, cadence=cadence or 1, **timing)
    except PeerUnavailable as why:
        return {"model": workload.name, "config": label, **about, "status": why.status, "reason": why.reason}
    return {**row, **about, "status": "measured"}


def summarize(model: str, config: str, steps: int, chunk: int, plain: list[float],
              watched: list[float]) -> dict[str, Any]:
    """One result row from each round's seconds per side: ms/step from the medians over rounds, the per-round
    ratio watched / plain (median and quartiles), the ratio of totals, and the raw round times.

    >>> row = summarize("mlp", "defaults", 50, 1, plain=[1.0, 1.0], watched=[1.1, 1.3])
    >>> [round(row[k], 3) for k in ("plain_ms", "watched_ms", "round_ratio_median", "ratio_of_totals")]
    [20.0, 24.0, 1.2, 1.2]
    """
    ratios = [w / p for w, p in zip(watched, plain)]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
    plain_ms = 1000 * statistics.median(plain) / steps
    watched_ms = 1000 * statistics.median(watched) / steps
    return {
        "model": model,
        "config": config,
        "plain_ms": plain_ms,
        "watched_ms": watched_ms,
        "ratio_of_medians": watched_ms / plain_ms,
        "round_ratio_median": median,
        "round_ratio_q1": q1,
        "round_ratio_q3": q3,
        "ratio_of_totals": sum(watched) / sum(plain),
        "steps_per_round": steps,
        "chunk": chunk,
        "rounds": len(ratios),
        "plain_round_s": plain,
        "watched_round_s": watched,
    }


# -- reporting -----------------------------------------------------------------------------------
def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per configuration row; peer rows (with a "peer" key) get peer and cadence columns,
    and those that could not run give their status and reason in place of the times.

    >>> print(markdown_table(rows))
    | model | config | plain ms/step | watched ms/step | ratio of medians | ...
    """
    peers = any("peer" in r for r in rows)
    lines = [
        ("| model | peer | every " if peers else "| model | config ")
        + "| plain ms/step | watched ms/step | ratio of medians | per-round ratio, median [IQR] | ratio of totals |",
        ("|---|---|---:|" if peers else "|---|---|") + "---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        head = f"| {r['model']} | " + (f"{r['peer']} | {r['cadence'] or '–'} |" if peers else f"{r['config']} |")
        if r.get("status", "measured") != "measured":
            lines.append(f"{head} – | – | – | {r['status']}: {r['reason']} | – |")
            continue
        lines.append(
            f"{head} {r['plain_ms']:.2f} | {r['watched_ms']:.2f} | "
            f"{r['ratio_of_medians']:.3f} | {r['round_ratio_median']:.3f} "
            f"[{r['round_ratio_q1']:.3f}–{r['round_ratio_q3']:.3f}] | {r['ratio_of_totals']:.3f} |"
        )
    return "\n".join(lines)


def machine_info(device: torch.device, threads: int) -> dict[str, Any]:
    """Where the timings come from: CPU model, usable cores, torch threads, versions, platform, device (+ GPU name).

    >>> machine_info(torch.device("cpu"), 2)
    {'cpu': 'AMD EPYC 7B13', 'cores': 2, 'threads': 2, 'torch': '2.5.1', ..., 'device': 'cpu'}
    """
    info = {
        "cpu": _cpu_model(),
        "cores": _available_cores(),
        "threads": threads,
        "torch": torch.__version__,
        "gradient_doctor": gd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def write_results(out: Path, device: torch.device, meta: dict[str, Any], rows: list[dict[str, Any]]) -> list[Path]:
    """Write `overhead-<device>.json` (meta and rows) and `.md` (settings and the table) to `out`; a peers run
    (a "peers" key in `meta`) writes `overhead-peers-<device>.*`. Returns both paths.

    >>> write_results(Path("/tmp/o"), torch.device("cpu"), meta, rows)
    [PosixPath('/tmp/o/overhead-cpu.json'), PosixPath('/tmp/o/overhead-cpu.md')]
    """
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"overhead-{'peers-' if 'peers' in meta else ''}{device.type}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    m = meta["machine"]
    md = [
        f"# {'gd.watch and its peers:' if 'peers' in meta else 'gd.watch'} step-time overhead ({device.type})",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['threads']} torch threads"
        + (f", GPU {m['gpu']}" if "gpu" in m else ""),
        f"- torch {m['torch']}, gradient-doctor {m['gradient_doctor']}, Python {m['python']}",
        ("- models (at the reduced --quick sizes): " if meta["quick"] else "- models: ")
        + "; ".join(f"{w['name']}: {w['description']}" for w in meta["workloads"]),
        f"- method: {meta['method']}",
        *(f"- {name} ({p['version']}): {p['computes']}" for name, p in meta.get("peers", {}).items()),
        "- K, C, R per model: "
        + "; ".join(dict.fromkeys(f"{r['model']}: {r['steps_per_round']}, {r['chunk']}, {r['rounds']}" for r in rows
                                  if "steps_per_round" in r)),
        "",
        markdown_table(rows),
        "",
    ]
    md_path.write_text("\n".join(md))
    return [json_path, md_path]


# -- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked (--steps a multiple of the cadence cycle, positive --chunk/--rounds, CUDA there
    for --device cuda); `--peers` without names means every peer.

    >>> parse_args(["--peers", "--models", "mlp"]).peers
    ['plain', 'gradient-doctor', 'wandb', 'tensorboard', 'lightning-grad_norm', 'traintools', 'cockpit-economy']
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--threads", type=int, default=_available_cores(),
                        help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--models", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--peers", nargs="*", choices=list(PEERS),
                        help="compare peers instead of --configs (no names: all of them); writes overhead-peers-*")
    parser.add_argument("--cadences", nargs="+", type=int, default=[1, 10],
                        help="with --peers: run each peer every N steps, for each N (default: 1 10)")
    parser.add_argument("--rounds", type=int, help="rounds per comparison (default: per model)")
    parser.add_argument("--steps", type=int, help=f"K, steps per side per round, a multiple of {CADENCE_CYCLE} "
                        "(with --peers: of the cadences' lcm) (default: per model)")
    parser.add_argument("--chunk", type=int, help="C, steps per turn within a round (default: 1 on CPU, K on CUDA)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny models, 2 rounds; writes to a temp dir")
    parser.add_argument("--out", type=Path,
                        help="results directory (default: benchmarks/results; a temp dir with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.peers is not None and min(args.cadences) < 1:
        parser.error(f"--cadences must be positive, got {args.cadences}")
    # a round's K steps hold whole cycles of the cadences, so that every round measures the same mix
    cycle = math.lcm(*args.cadences) if args.peers is not None else CADENCE_CYCLE
    if args.steps is not None and (args.steps <= 0 or args.steps % cycle):
        parser.error(f"--steps must be a positive multiple of {cycle}, got {args.steps}")
    if args.peers is not None:
        args.peers = args.peers or list(PEERS)
        if CADENCE_CYCLE % cycle:
            parser.error(f"--cadences' lcm must divide {CADENCE_CYCLE}, got {args.cadences}")
    if args.chunk is not None and args.chunk < 1:
        parser.error(f"--chunk must be at least 1, got {args.chunk}")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available in this torch build / on this machine")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Time each chosen model under each configuration (or peer and cadence); print the table, write the files.

    >>> rows = main(["--quick", "--models", "mlp", "--configs", "defaults"])    # files in a temp dir
    >>> rows[0]["config"], rows[0]["round_ratio_median"]
    ('defaults', 1.07)
    """
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    workloads = [WORKLOADS[name] for name in args.models]
    rows = []
    for workload in workloads:
        steps = args.steps or workload.steps
        chunk = args.chunk or (steps if device.type == "cuda" else 1)
        if steps % chunk:
            raise SystemExit(f"--chunk must divide the steps per round ({steps}), got {chunk}")
        rounds = args.rounds or (2 if args.quick else workload.rounds)
        timing = {"quick": args.quick, "steps": steps, "chunk": chunk, "rounds": rounds, "seed": args.seed}
        if args.peers is None:
            todo = [lambda config=config: compare(workload, config, device, **timing) for config in args.configs]
        else:
            todo = [lambda peer=PEERS[name], cadence=cadence: peer_row(workload, peer, cadence, device, **timing)
                    for name in args.peers for cadence in (args.cadences if PEERS[name].cadenced else [None])]
        for measure in todo:
            row = measure()
            rows.append(row)
            result = (f"{row['status']}: {row['reason']}" if row.get("status", "measured") != "measured" else
                      f"per-round ratio {row['round_ratio_median']:.3f} "
                      f"[{row['round_ratio_q1']:.3f}–{row['round_ratio_q3']:.3f}]")
            print(f"  {workload.name:<12} {row['config']:<30} {result}", file=sys.stderr, flush=True)
    print(markdown_table(rows))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["python", __file__, *argv]),
        "machine": machine_info(device, args.threads),
        "workloads": [{"name": w.name, "description": w.description} for w in workloads],
        **({"configs": {name: CONFIGS[name] for name in args.configs}} if args.peers is None else
           {"peers": {name: {"computes": PEERS[name].computes, "version": peer_version(PEERS[name])}
                      for name in args.peers}, "cadences": args.cadences}),
        "method": "two identical model copies, one watched for the whole comparison; after a warm-up round, "
                  "R rounds of K steps per copy, the copies taking turns every C steps in ABBA order (the "
                  "opening copy alternates between rounds); ms/step = median over rounds of round time / K; "
                  "per-round ratio = watched / plain time of the same round.",
        "quick": args.quick,
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="gd-overhead-results-")) if args.quick else RESULTS_DIR)
    for path in write_results(out, device, meta, rows):
        print(f"wrote {path}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
