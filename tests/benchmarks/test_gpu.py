"""`benchmarks/gpu.py` on the CPU with tiny models: every step of its code runs (models, interleaved timing, the
watch, results files) so that the GPU command cannot rot between the rare runs on a CUDA machine; without CUDA the
CUDA command stops with a message and exit status 2."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import gradient_doctor as gd
from benchmarks import gpu

TINY = ["--device", "cpu", "--size", "tiny", "--steps", "2", "--rounds", "2", "--sync-steps", "2"]


def test_the_cpu_smoke_run_measures_every_model_and_configuration(tmp_path):
    rows = gpu.main([*TINY, "--out", str(tmp_path)])
    assert [(r["model"], r["config"]) for r in rows] == [
        (model, config) for model in gpu.WORKLOADS for config in gpu.CONFIG_NAMES]
    for row in rows:
        assert row["watch_working"], row  # the probe measured every timed step (it never switched itself off)
        assert len(row["plain_round_s"]) == len(row["watched_round_s"]) == 2
        assert all(t > 0 for t in row["plain_round_s"] + row["watched_round_s"])
        assert row["memory"] is None and row["sync"]["status"] == "skipped" and "CPU" in row["sync"]["reason"]
    saved = json.loads((tmp_path / "gpu-cpu.json").read_text())
    assert saved["tiny"] and saved["command"].startswith("python -m benchmarks.gpu --device cpu")
    assert [r["model"] for r in saved["results"]] == [r["model"] for r in rows]
    page = (tmp_path / "gpu-cpu.md").read_text()
    assert "tiny sizes: a smoke run" in page and "not checked (on the CPU" in page
    assert page.count("| gpt2 |") == len(gpu.CONFIG_NAMES)


def test_a_block_is_timed_and_a_round_alternates_its_copies():
    plain, watched = gpu.make_pair(gpu.WORKLOADS["mlp"], torch.device("cpu"), tiny=True, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), watched.model.parameters()))
    order = []
    for trainer, name in ((plain, "plain"), (watched, "watched")):
        trainer.step = lambda name=name: order.append(name)
    p, w = gpu.one_round(plain, watched, 2, watched_first=True)
    assert order == ["watched", "watched", "plain", "plain"] and p.seconds() >= 0 and w.seconds() >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_the_gpu_command_stops_with_a_message(capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu.main([])
    assert stopped.value.code == 2
    assert "no CUDA device here" in capsys.readouterr().err


def test_the_sync_check_counts_each_side_and_excepts_the_flushes(monkeypatch):
    """The sync check's bookkeeping, with torch's sync debug mode played by a fake: the plain step synchronises once
    (seen in "warn" mode), the watched steps only in the record's flush (every 2 steps here), which is excepted."""
    modes = [0]
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: modes[-1])
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", modes.append)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)

    def synchronising_call() -> None:  # what a synchronising CUDA call does under each mode
        if modes[-1] in ("warn", 1):
            warnings.warn("called a synchronizing CUDA operation", UserWarning)
        elif modes[-1] in ("error", 2):
            raise RuntimeError("called a synchronizing CUDA operation")

    plain, watched = gpu.make_pair(gpu.WORKLOADS["mlp"], torch.device("cpu"), tiny=True, seed=0)
    plain_step = plain.step
    plain.step = lambda: (plain_step(), synchronising_call())
    watched.run = gd.watch(watched.model, watched.optimizer, flush_every=2)
    flush = watched.run.flush
    watched.run.flush = lambda: (synchronising_call(), flush())
    try:
        result = gpu.sync_check(plain, watched, steps=5)
    finally:
        watched.run.close()
    assert result["plain_syncs"] == 5 and result["watched_syncs"] == 0 and result["error_mode_raised"] == 0
    assert result["flushes_excepted"] == 4  # steps 2 and 4 of the "warn" pass, 1 and 3 of the "error" pass
    assert result["sites"] and all("synchronizing" in site for site in result["sites"])
    assert modes[-1] == 0  # left off
