"""The overhead benchmark's peers: the adapters run and compute what their tools compute (checked
against plain torch), the comparison yields timed rows, and a peer that cannot be imported is
reported as such (never silently dropped, never confused with a broken import)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator
from torch import nn

from benchmarks import overhead
from benchmarks.peers import PEERS, PeerUnavailable, require

CPU = torch.device("cpu")
TIMING = {"quick": True, "steps": 4, "chunk": 1, "rounds": 2, "seed": 0}


def build_small(quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)), torch.randn(8, 6), torch.randint(0, 3, (8,))


SMALL = overhead.Workload("small", "MLP 6-5-3, batch 8, SGD", build_small, lambda p: torch.optim.SGD(p, lr=0.1),
                          steps=4, rounds=2)


def small_mlp() -> tuple[nn.Module, torch.optim.Optimizer, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model, x, y = build_small(True)
    return model, SMALL.optimizer(list(model.parameters())), x, y


def train(peer: str, cadence: int, steps: int, tmp: Path):
    """Run `steps` steps with the peer attached; returns (model, attached, per-step gradients as
    captured by the test itself between backward and optimizer.step)."""
    model, optimizer, x, y = small_mlp()
    attached = PEERS[peer].attach(model, optimizer, cadence, tmp)
    grads = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = attached.loss_backward(model(x), y)
        grads.append({name: p.grad.detach().clone() for name, p in model.named_parameters()})
        optimizer.step()
        attached.after_step(loss)
    return model, attached, grads


@pytest.mark.parametrize("peer", ["plain", "gradient-doctor", "tensorboard", "lightning-grad_norm"])
def test_installed_peers_give_timed_rows(peer):
    cadence = 2
    row = overhead.peer_row(SMALL, PEERS[peer], cadence, CPU, **TIMING)
    assert row["status"] == "measured" and row["peer"] == peer and row["cadence"] == cadence
    assert len(row["plain_round_s"]) == len(row["watched_round_s"]) == TIMING["rounds"]
    assert all(t > 0 for t in row["plain_round_s"] + row["watched_round_s"])
    ratios = sorted(w / p for w, p in zip(row["watched_round_s"], row["plain_round_s"]))
    assert row["round_ratio_median"] == pytest.approx(sum(ratios) / 2)  # median of two rounds


def test_tensorboard_adapter_logs_each_gradient_every_n_steps(tmp_path):
    model, attached, grads = train("tensorboard", 3, 7, tmp_path)
    attached.close()
    events = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
    events.Reload()
    names = [name for name, _ in model.named_parameters()]
    assert sorted(events.Tags()["histograms"]) == sorted(names)
    for name in names:
        logged = events.Histograms(name)
        assert [h.step for h in logged] == [0, 3, 6]
        for h in logged:
            assert h.histogram_value.num == grads[h.step][name].numel()
            assert h.histogram_value.sum == pytest.approx(grads[h.step][name].sum().item(), rel=1e-5, abs=1e-7)


def test_lightning_adapter_logs_gradient_two_norms_as_floats(tmp_path):
    model, attached, grads = train("lightning-grad_norm", 2, 5, tmp_path)
    assert [step for step, _ in attached.records] == [0, 2, 4]
    for step, logged in attached.records:
        expected = {f"grad_2.0_norm/{n}": torch.linalg.vector_norm(g.double()).item() for n, g in grads[step].items()}
        expected["grad_2.0_norm_total"] = math.sqrt(sum(v * v for v in expected.values()))
        assert logged.keys() == expected.keys()
        assert all(type(v) is float for v in logged.values())
        assert logged == pytest.approx(expected, rel=1e-5)


def test_gradient_doctor_adapter_measures_at_the_cadence(tmp_path):
    model, attached, grads = train("gradient-doctor", 2, 5, tmp_path)
    run = attached.records[0]
    assert list(run.steps) == [0, 1, 2, 3, 4]
    for name, _ in model.named_parameters():
        history = run.history("grad_norm", layer=name)
        for step, value in enumerate(history):
            if step % 2:
                assert math.isnan(value)
            else:
                assert value == pytest.approx(torch.linalg.vector_norm(grads[step][name].double()).item(), rel=1e-5)
    attached.close()


@pytest.mark.parametrize("peer, module, named", [("wandb", "wandb", ("wandb",)),
                                                 ("traintools", "traintools.gradhealth", ("traintools",)),
                                                 ("cockpit-economy", "cockpit", ("cockpit", "backpack"))])
def test_peer_not_installed_is_reported_not_dropped(peer, module, named, monkeypatch):
    monkeypatch.setitem(sys.modules, module.split(".")[0], None)  # as if absent, whatever this env holds
    row = overhead.peer_row(SMALL, PEERS[peer], 10, CPU, **TIMING)
    assert row["status"] == "not installed"
    # the missing module is named: cockpit's support check imports BackPACK first, absent without the peers
    assert any(name in row["reason"] for name in named), row["reason"]
    assert "round_ratio_median" not in row
    line = overhead.markdown_table([row]).splitlines()[-1]
    assert f"| {peer} | 10 |" in line and "not installed" in line


def test_broken_import_is_told_apart_from_missing(tmp_path, monkeypatch):
    (tmp_path / "broken_peer_pkg.py").write_text("import dependency_that_is_not_there_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PeerUnavailable) as broken:
        require("broken_peer_pkg")
    assert broken.value.status == "import fails" and "dependency_that_is_not_there_xyz" in broken.value.reason
    with pytest.raises(PeerUnavailable) as missing:
        require("peer_that_is_not_there_xyz")
    assert missing.value.status == "not installed"


def test_peer_mode_cli_checks_cadences_against_steps():
    with pytest.raises(SystemExit):
        overhead.parse_args(["--peers", "plain", "--cadences", "1", "10", "--steps", "15"])
    args = overhead.parse_args(["--peers", "--cadences", "1", "10", "--steps", "20"])
    assert args.peers == list(PEERS) and args.steps == 20
