"""The real-architecture zoo's quick subset: healthy controls at their library's own init raise no alarm. Labels come
from plain torch (benchmarks/real/labels.py imports no gradient_doctor)."""

from __future__ import annotations

import ast
import inspect
import warnings

import pytest

pytest.importorskip("transformers")

from benchmarks.real import labels  # noqa: E402
from benchmarks.real.__main__ import QUICK, judge  # noqa: E402
from benchmarks.real.controls import CONTROLS  # noqa: E402


def test_the_label_checks_import_no_gradient_doctor():
    tree = ast.parse(inspect.getsource(labels))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [name for name in imported if "gradient_doctor" in name]


def test_a_pre_norm_llama_trains_and_its_stream_gradient_grows_toward_the_input():
    """The label and the structure in plain torch: the gradient at the first block's output is larger than at the
    last block's (small embeddings, normalised blocks), and the model trains."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert labels.stream_ratio(CONTROLS["llama"]) > 1.2
        assert labels.train_label(CONTROLS["llama"], steps=100).healthy


@pytest.mark.parametrize("name", QUICK)
def test_no_alarm_at_init_on_healthy_controls(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = judge(name, steps=0, quick=True)
    assert row["label"] == "healthy"
    assert row["checkup_alarms"] == [] and not row["false_alarm"]
    assert row["checkup_seconds"] < 10
