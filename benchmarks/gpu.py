"""`gd.watch` where practitioners train: step time, peak memory and host syncs on a CUDA device, in one command.

    $ python -m benchmarks.gpu                          # CUDA: MLP, ResNet-18, GPT-2 small; under 5 min on one H100
    $ python -m benchmarks.gpu --models gpt2 --rounds 3
    $ python -m benchmarks.gpu --device cpu --size tiny --steps 2 --rounds 2 --out /tmp/g   # the same code on the CPU

Three models, each trained on one fixed batch under bf16 autocast with AdamW (fp32 weights, as mixed-precision
training keeps them): an MLP (8 × Linear 4096 + ReLU, batch 2048), ResNet-18 (CIFAR stem, 32×32, batch 256,
`benchmarks/real/vision.py`) and a GPT-2-small-sized decoder (`transformers.GPT2LMHeadModel` from the default
`GPT2Config`, 124 M parameters at its own random init, no download; batch 8 × 1024 tokens). For each model and each
watch configuration (defaults; gradient norms only; everything every step):

* **step time**, interleaved in one process: two identical copies, one watched, each round running K steps of one
  copy then K of the other (which one opens alternates between rounds), after a warm-up round. A K-step block is
  timed by CUDA events around it, and the device is synchronised only at the end of a round, so the host runs ahead
  of the device as in real training. Reported as in `benchmarks/overhead.py`: median and interquartile range over
  rounds of the per-round ratio watched / plain, the medians of each side's ms/step, the ratio of totals.
* **peak memory**: `torch.cuda.max_memory_allocated` over each timed block (both copies resident; the difference is
  what watching adds, also shown as a share of one plain copy's peak).
* **host syncs**: over `--sync-steps` more steps, `torch.cuda.set_sync_debug_mode("warn")` counts the synchronising
  calls of plain steps and of watched steps; then `set_sync_debug_mode("error")` wraps the watched steps, which must
  raise nothing. The record's flush (every `flush_every` = 100 steps: the one device→host copy) is excepted and
  counted: the mode is switched off for the flush call alone, so the rest of a flushing step is still checked. The
  check follows the timed rounds: constant index tables the probe copies to the device once per process are there.

Results: `benchmarks/results/gpu-<device>.{json,md}` with the device name, torch/CUDA versions, the command and
the date (`--out` elsewhere; `--size tiny` writes to a temporary directory unless `--out` is given). On a machine
without CUDA, `--device cuda` (the default) stops with a message and exit status 2. `--device cpu --size tiny`
runs every step of the code on the CPU, with tiny models (what the test suite does); there, CUDA events give way to
the host clock, and the memory and sync checks are skipped (the CPU has no device to synchronise with) and say so.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import re
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import gradient_doctor as gd

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.gpu
    from overhead import CADENCE_CYCLE, CONFIGS, RESULTS_DIR, machine_info, summarize
    from real.vision import resnet18
except ImportError:
    from benchmarks.overhead import CADENCE_CYCLE, CONFIGS, RESULTS_DIR, machine_info, summarize
    from benchmarks.real.vision import resnet18

#: the watch configurations timed here (their gd.watch arguments are overhead.CONFIGS')
CONFIG_NAMES = ("defaults", "gradient norms only", "everything every step")
SYNC_STEPS = 60  # after the 300 timed watched steps, each pass holds a flush (every 100th) and a detail step (50th)
NO_SYNC_CHECK = {"status": "skipped", "reason": "on the CPU: there is no device to synchronise with"}
MIB = 2**20


# -- models --------------------------------------------------------------------------------------
Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Workload:
    """A model to time: `build(tiny)` -> (model, batch), `loss(model, batch)` -> scalar loss, AdamW's learning rate.

    >>> model, batch = WORKLOADS["gpt2"].build(tiny=True)
    >>> WORKLOADS["gpt2"].loss(model, batch).backward()
    """

    name: str
    description: str
    build: Callable[[bool], tuple[nn.Module, Batch]]
    loss: Callable[[nn.Module, Batch], Tensor]
    lr: float = 1e-4


def build_mlp(tiny: bool) -> tuple[nn.Module, Batch]:
    """8 × (Linear 4096→4096 + ReLU), then 1,000 classes; batch 2048 (tiny: width 16, 3 layers, batch 8)."""
    width, depth, batch = (16, 3, 8) if tiny else (4096, 8, 2048)
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, 1000))
    return model, (torch.randn(batch, width), torch.randint(0, 1000, (batch,)))


def build_resnet(tiny: bool) -> tuple[nn.Module, Batch]:
    """ResNet-18 (CIFAR stem, width 64), 100 classes; 32×32×3, batch 256 (tiny: width 4, batch 4)."""
    width, batch = (4, 4) if tiny else (64, 256)
    return resnet18(classes=100, width=width), (torch.randn(batch, 3, 32, 32), torch.randint(0, 100, (batch,)))


def build_gpt2(tiny: bool) -> tuple[nn.Module, Batch]:
    """GPT-2 small from `transformers.GPT2Config()` at its own init; batch 8 × 1024 tokens (tiny: 2 layers of width
    32, vocabulary 128, batch 2 × 16)."""
    import transformers

    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=128, n_positions=32, bos_token_id=0,
                                     eos_token_id=0) if tiny else transformers.GPT2Config()
    batch, length = (2, 16) if tiny else (8, 1024)
    ids = torch.randint(0, config.vocab_size, (batch, length))
    return transformers.GPT2LMHeadModel(config), (ids, ids)


def classification_loss(model: nn.Module, batch: Batch) -> Tensor:
    inputs, targets = batch
    return nn.functional.cross_entropy(model(inputs), targets)


def causal_lm_loss(model: nn.Module, batch: Batch) -> Tensor:
    ids, labels = batch
    return model(input_ids=ids, labels=labels).loss


WORKLOADS = {
    "mlp": Workload("mlp", "MLP 8 × Linear 4096 + ReLU, batch 2048", build_mlp, classification_loss),
    "resnet18": Workload("resnet18", "ResNet-18 (CIFAR stem), 32×32×3, batch 256", build_resnet, classification_loss),
    "gpt2": Workload("gpt2", "GPT-2 small (124 M, transformers GPT2Config), batch 8 × 1024 tokens", build_gpt2,
                     causal_lm_loss, lr=3e-4),
}


# -- training and timing ---------------------------------------------------------------------------
class Trainer:
    """One model copy with its AdamW and its fixed batch on `device`; `step()` is one bf16-autocast training step,
    followed by `run.step(loss=loss)` while `run` (a gd.watch run) is set.

    >>> plain, watched = make_pair(WORKLOADS["mlp"], torch.device("cuda"), tiny=False, seed=0)
    >>> plain.step()
    """

    def __init__(self, workload: Workload, model: nn.Module, batch: Batch, device: torch.device):
        self.workload, self.model, self.device = workload, model, device
        self.batch = tuple(t.to(device) for t in batch)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=workload.lr, weight_decay=0.01)
        self.run: gd.Run | None = None

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            loss = self.workload.loss(self.model, self.batch)
        loss.backward()
        self.optimizer.step()
        if self.run is not None:
            self.run.step(loss=loss)


def make_pair(workload: Workload, device: torch.device, tiny: bool, seed: int) -> tuple[Trainer, Trainer]:
    """Two identical copies of the workload's model on `device`, each with its own AdamW: (plain, to be watched)."""
    torch.manual_seed(seed)
    model, batch = workload.build(tiny)
    model.to(device).train()
    twin = copy.deepcopy(model)
    return Trainer(workload, model, batch, device), Trainer(workload, twin, batch, device)


@dataclass
class Block:
    """K steps of one trainer, timed on the device's clock (read once the round is synchronised)."""

    start: Any  # torch.cuda.Event, or perf_counter seconds on the CPU
    end: Any
    peak: int | None  # bytes: torch.cuda.max_memory_allocated over the block (None on the CPU)

    def seconds(self) -> float:
        if isinstance(self.start, float):
            return self.end - self.start
        return self.start.elapsed_time(self.end) / 1000


def timed_block(trainer: Trainer, steps: int) -> Block:
    """Run `steps` steps between two CUDA events (host clock on the CPU); no synchronisation."""
    if trainer.device.type != "cuda":
        start = time.perf_counter()
        for _ in range(steps):
            trainer.step()
        return Block(start, time.perf_counter(), None)
    torch.cuda.reset_peak_memory_stats(trainer.device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        trainer.step()
    end.record()
    return Block(start, end, torch.cuda.max_memory_allocated(trainer.device))


def one_round(plain: Trainer, watched: Trainer, steps: int, watched_first: bool) -> tuple[Block, Block]:
    """K = `steps` steps of each copy, one block after the other; the device is synchronised once, at the end."""
    first, second = (watched, plain) if watched_first else (plain, watched)
    blocks = {id(first): timed_block(first, steps)}
    blocks[id(second)] = timed_block(second, steps)
    if plain.device.type == "cuda":
        torch.cuda.synchronize(plain.device)
    return blocks[id(plain)], blocks[id(watched)]


def resident_bytes(trainer: Trainer) -> int:
    """Bytes one copy holds between steps: its parameters and its optimizer's state tensors."""
    tensors = list(trainer.model.parameters()) + [
        value for state in trainer.optimizer.state.values() for value in state.values() if isinstance(value, Tensor)
    ]
    return sum(t.numel() * t.element_size() for t in tensors if t.device.type == "cuda")


# -- one configuration ------------------------------------------------------------------------------
def compare(plain: Trainer, watched: Trainer, config: str, *, steps: int, rounds: int, sync_steps: int
            ) -> dict[str, Any]:
    """Time, measure the memory of and sync-check one watch configuration; returns its result row.

    >>> row = compare(plain, watched, "defaults", steps=50, rounds=5, sync_steps=60)
    >>> row["round_ratio_median"], row["sync"]["watched_syncs"]
    (1.01, 0)
    """
    watched.run = gd.watch(watched.model, watched.optimizer, **CONFIGS[config])
    try:
        one_round(plain, watched, steps, watched_first=False)  # warm-up; leaves the cadence on a cycle
        blocks = [one_round(plain, watched, steps, watched_first=r % 2 == 1) for r in range(rounds)]
        sync = sync_check(plain, watched, sync_steps) if watched.device.type == "cuda" else NO_SYNC_CHECK
    finally:
        watched.run.close()
        run, watched.run = watched.run, None
    row = summarize(plain.workload.name, config, steps, steps, [p.seconds() for p, _ in blocks],
                    [w.seconds() for _, w in blocks])
    row["watch_working"] = _watch_working(run, (rounds + 1) * steps)
    row["memory"] = _memory(blocks, watched)
    row["sync"] = sync
    return row


def _watch_working(run: gd.Run, timed: int) -> bool:
    """The record holds the warm-up and timed watched steps, with a finite gradient norm in every layer that has
    parameters: the probe was measuring (it switches itself off on an internal error), not idling."""
    norms = run.history("grad_norm")[:timed]
    owns = [layer.numel > 0 for layer in run.layer_details]
    return len(norms) == timed and bool(np.isfinite(norms[:, owns]).all())


def _memory(blocks: list[tuple[Block, Block]], watched: Trainer) -> dict[str, Any] | None:
    """Peak allocated MiB of plain and watched blocks (max over rounds; both copies resident), the difference, and
    the difference as a share of one plain copy's peak (the plain peak less the other copy's resident bytes)."""
    if watched.device.type != "cuda":
        return None
    plain = max(p.peak for p, _ in blocks)
    peak = max(w.peak for _, w in blocks)
    one_copy = plain - resident_bytes(watched)
    return {"plain_peak_mib": plain / MIB, "watched_peak_mib": peak / MIB, "extra_mib": (peak - plain) / MIB,
            "extra_share": (peak - plain) / one_copy if one_copy > 0 else None}


# -- host syncs -------------------------------------------------------------------------------------
def sync_check(plain: Trainer, watched: Trainer, steps: int) -> dict[str, Any]:
    """Synchronising calls per `steps` plain steps and per `steps` watched steps (mode "warn", flushes excepted),
    then the watched steps again under mode "error", which must raise nothing: the sites of any that do."""
    flushes = _except_flushes(watched.run)
    plain_sites = _syncs(plain, steps, "warn")
    watched_sites = _syncs(watched, steps, "warn")
    raised = _syncs(watched, steps, "error")
    return {
        "status": "checked", "steps": steps, "flushes_excepted": flushes["count"],
        "plain_syncs": len(plain_sites), "watched_syncs": len(watched_sites),
        "error_mode_raised": len(raised), "sites": sorted(set(plain_sites + watched_sites + raised)),
    }


def _except_flushes(run: gd.Run) -> dict[str, int]:
    """Switch the sync debug mode off for the record's flushes alone (the one planned device→host copy), and count
    them. Returns the live count."""
    flush, counted = run.flush, {"count": 0}

    def excepted() -> None:
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            flush()
        finally:
            torch.cuda.set_sync_debug_mode(mode)
            counted["count"] += 1

    run.flush = excepted
    return counted


def _syncs(trainer: Trainer, steps: int, mode: str) -> list[str]:
    """The sites ("file:line: message") of synchronising calls during `steps` steps under sync debug `mode`: warnings
    in "warn"; in "error", the errors raised, including those gd.watch's probe caught and reported (it warns and
    switches itself off rather than crash training)."""
    sites = []
    torch.cuda.synchronize(trainer.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(mode)
        try:
            for _ in range(steps):
                try:
                    trainer.step()
                except RuntimeError as err:
                    sites.append(f"raised: {str(err).splitlines()[0]}")
        finally:
            torch.cuda.set_sync_debug_mode(0)
    for w in caught:
        text = str(w.message)
        if "synchroniz" in text or text.startswith("gradient-doctor:"):
            sites.append(f"{Path(w.filename).name}:{w.lineno}: {text.splitlines()[0][:160]}")
    return sites


# -- reporting ------------------------------------------------------------------------------------
def device_slug(device: torch.device) -> str:
    """The results' file name part: the GPU's name in lower case with dashes ("nvidia-h100-80gb-hbm3"), else "cpu"."""
    if device.type != "cuda":
        return device.type
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """One line per (model, configuration): times and ratios, peak memory, host syncs.

    >>> print(markdown_table(rows))
    | model | config | plain ms/step | watched ms/step | per-round ratio, median [IQR] | ratio of totals | ...
    """
    lines = ["| model | config | plain ms/step | watched ms/step | per-round ratio, median [IQR] | ratio of totals "
             "| peak MiB plain → watched (share of one copy) | host syncs: plain / watched (error mode) | flushes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        memory, sync = r["memory"], r["sync"]
        peak = "–" if memory is None else (
            f"{memory['plain_peak_mib']:.0f} → {memory['watched_peak_mib']:.0f} (+{memory['extra_mib']:.0f}"
            + ("" if memory["extra_share"] is None else f", {100 * memory['extra_share']:.1f} %") + ")")
        syncs = ("skipped" if sync["status"] != "checked" else
                 f"{sync['plain_syncs']} / {sync['watched_syncs']} ({sync['error_mode_raised']})")
        flushes = sync.get("flushes_excepted", "–")
        lines.append(f"| {r['model']} | {r['config']} | {r['plain_ms']:.2f} | {r['watched_ms']:.2f} | "
                     f"{r['round_ratio_median']:.3f} [{r['round_ratio_q1']:.3f}–{r['round_ratio_q3']:.3f}] | "
                     f"{r['ratio_of_totals']:.3f} | {peak} | {syncs} | {flushes} |")
    return "\n".join(lines)


def write_results(out: Path, device: torch.device, meta: dict[str, Any], rows: list[dict[str, Any]]) -> list[Path]:
    """`gpu-<device>.json` (meta and rows) and `.md` (settings, table, sync sites) in `out`; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"gpu-{device_slug(device)}"
    json_path, md_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    json_path.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
    m = meta["machine"]
    sites = sorted({site for r in rows for site in r["sync"].get("sites", [])})
    md = [
        f"# gd.watch on {m.get('gpu', device.type)}",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- device: {m.get('gpu', device.type)}; torch {m['torch']}, CUDA {meta['cuda']}, cuDNN {meta['cudnn']}; "
        f"gradient-doctor {m['gradient_doctor']}, Python {m['python']}; host {m['cpu']}, {m['cores']} cores",
        ("- models (tiny sizes: a smoke run, not a measurement): " if meta["tiny"] else "- models: ")
        + "; ".join(f"{w['name']}: {w['description']}" for w in meta["workloads"])
        + "; bf16 autocast, AdamW, fp32 weights",
        f"- method: {meta['method']}",
        f"- K steps per block, R rounds: {meta['steps']}, {meta['rounds']}; sync check over {meta['sync_steps']} "
        "plain and watched steps per configuration",
        "",
        markdown_table(rows),
        "",
        "Host syncs: " + ("; ".join(f"`{s}`" for s in sites) if sites else
                          "none on any non-flush step." if any(r["sync"]["status"] == "checked" for r in rows) else
                          f"not checked ({rows[0]['sync']['reason']})." if rows else "not checked."),
        "",
    ]
    md_path.write_text("\n".join(md))
    return [json_path, md_path]


# -- main ----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; stops with exit status 2 and a message when the device is CUDA and there is none.

    >>> parse_args(["--device", "cpu", "--size", "tiny"]).steps
    50
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --size tiny: the smoke run)")
    parser.add_argument("--size", choices=("full", "tiny"), default="full", help="model sizes (tiny: the CPU test)")
    parser.add_argument("--models", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--configs", nargs="+", choices=CONFIG_NAMES, default=list(CONFIG_NAMES))
    parser.add_argument("--steps", type=int, default=CADENCE_CYCLE,
                        help=f"K, steps per block (default {CADENCE_CYCLE}: one cycle of the default cadences)")
    parser.add_argument("--rounds", type=int, default=5, help="R, timed rounds per configuration (default 5)")
    parser.add_argument("--sync-steps", type=int, default=SYNC_STEPS,
                        help=f"steps per pass of the sync check (default {SYNC_STEPS}: each pass holds a flush)")
    parser.add_argument("--out", type=Path, help="results directory (default benchmarks/results; tiny: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "rounds", "sync_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.exit(2, f"benchmarks/gpu.py: no CUDA device here (torch {torch.__version__}, built with CUDA "
                       f"{torch.version.cuda}): nothing was measured. Run it on a machine with an NVIDIA GPU; "
                       "`--device cpu --size tiny` runs the same code on the CPU as a smoke test.\n")
    return args


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Measure every chosen model under every chosen configuration; print the table, write the files.

    >>> rows = main(["--device", "cpu", "--size", "tiny", "--steps", "2", "--rounds", "2", "--out", "/tmp/g"])
    """
    args = parse_args(argv)
    device = torch.device(args.device)
    began = time.perf_counter()
    rows = []
    for name in args.models:
        workload = WORKLOADS[name]
        plain, watched = make_pair(workload, device, args.size == "tiny", args.seed)
        for config in args.configs:
            row = compare(plain, watched, config, steps=args.steps, rounds=args.rounds, sync_steps=args.sync_steps)
            rows.append(row)
            print(f"  {time.perf_counter() - began:6.0f} s  {name:<9} {config:<22} per-round ratio "
                  f"{row['round_ratio_median']:.3f} [{row['round_ratio_q1']:.3f}–{row['round_ratio_q3']:.3f}]",
                  file=sys.stderr, flush=True)
        del plain, watched
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(markdown_table(rows))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", "benchmarks.gpu", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(device, torch.get_num_threads()),
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "workloads": [{"name": n, "description": WORKLOADS[n].description} for n in args.models],
        "configs": {name: CONFIGS[name] for name in args.configs},
        "method": "two identical copies, one watched; after a warm-up round, R rounds of one K-step block per copy "
                  "(the opening copy alternates), each block timed by CUDA events, the device synchronised at "
                  "round ends; per-round ratio = watched / plain block time of the same round.",
        "steps": args.steps, "rounds": args.rounds, "sync_steps": args.sync_steps, "tiny": args.size == "tiny",
        "seconds": time.perf_counter() - began,
    }
    out = args.out or (Path(tempfile.mkdtemp(prefix="gd-gpu-")) if args.size == "tiny" else RESULTS_DIR)
    for path in write_results(out, device, meta, rows):
        print(f"wrote {path}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
