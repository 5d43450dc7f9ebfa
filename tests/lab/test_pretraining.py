"""lab pretraining (quick): the arms, the compute charged to pre-training (checked with torch's FLOP counter)
and the `none` arm's accuracy (re-trained in plain torch with the same seed and batches)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import gradient_doctor as gd
from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import VERDICTS
from gradient_doctor.lab.experiments.pretraining import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def result(quick_lab):
    return quick_lab("pretraining")[0]


def _plain_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    sizes = [40] + [QUICK.width] * QUICK.hidden
    blocks = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.Sigmoid())]
    return nn.Sequential(*blocks, nn.Linear(QUICK.width, 10))


def _row(result, optimiser, arm):
    (row,) = [r for r in result.rows if (r["optimiser"], r["arm"]) == (optimiser, arm)]
    return row


def test_arms_and_verdicts(result):
    assert len(result.rows) == 2 * 3 and all(c.verdict in VERDICTS for c in result.claims)
    # measured: the deep sigmoid net stays at chance with SGD (lr 0.1, momentum 0.9) in every arm …
    for arm in ("none", "pretrained", "none+compute"):
        assert _row(result, "sgd", arm)["final_loss"] > 0.97 * math.log(10)
    # … while Adam moves it off chance
    assert _row(result, "adam", "none")["final_loss"] < 0.9 * math.log(10)
    assert _row(result, "adam", "none")["test_acc"] > 0.2


def test_none_arm_reproduces_in_plain_torch(result):
    """Same seed, same construction order, same batches: the experiment's `none` Adam arm, step for step."""
    data = mnist1d()
    net = _plain_net(QUICK.seeds - 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(QUICK.steps):
        i = torch.randint(0, len(data.y_train), (QUICK.batch,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.x_train[i]), data.y_train[i]).backward()
        opt.step()
    with torch.no_grad():
        acc = (net(data.x_test).argmax(1) == data.y_test).double().mean().item()
    assert acc == pytest.approx(_row(result, "adam", "none")["test_acc"], abs=1e-9)


def test_compute_charged_to_pretraining_matches_flop_counter(result):
    """The none+compute arm's extra steps = pre-training FLOPs / one supervised step's FLOPs, both counted by
    torch's FlopCounterMode (optimiser updates are not counted by either)."""
    data = mnist1d()
    net = _plain_net(0)
    with FlopCounterMode(display=False) as pretrain:
        gd.remedies.greedy_pretrain(net, inputs=data.x_train, epochs=QUICK.pretrain_epochs, lr=QUICK.pretrain_lr,
                                    batch_size=QUICK.batch, progress=False)
    with FlopCounterMode(display=False) as step:
        nn.functional.cross_entropy(net(data.x_train[: QUICK.batch]), data.y_train[: QUICK.batch]).backward()
    expected = pretrain.get_total_flops() / step.get_total_flops()
    extra = _row(result, "adam", "none+compute")["supervised_steps"] - QUICK.steps
    assert extra == _row(result, "adam", "pretrained")["pretrain_step_equivalents"]
    assert extra == pytest.approx(expected, rel=0.03)  # the counter also sees the decoders' least-squares start
