"""The one remedy table: every name rules may rank is bound in treat, and gd.remedies exports exactly the functions
the table names."""

import copy

import pytest
import torch
from torch import nn

import gradient_doctor as gd
from gradient_doctor.catalog import CATALOG, ENTRIES
from gradient_doctor.treat.registry import Context, lookup


def test_every_name_is_bound_and_gd_remedies_holds_exactly_the_named_functions():
    for name, entry in ENTRIES.items():
        remedy = lookup(name)
        assert (remedy.kind, remedy.cost, remedy.opt_in) == (entry.kind, entry.cost if entry.kind == "surgery" else 0,
                                                             entry.opt_in)
        assert (remedy.apply is not None) is (entry.kind == "surgery"), name
    named = {name.partition(":")[0] for name, entry in ENTRIES.items() if entry.kind != "advice"}
    assert named == set(gd.remedies.__all__)
    assert set(CATALOG) == set(ENTRIES) and all(CATALOG[n] == ENTRIES[n].line for n in ENTRIES)


def test_an_unknown_name_is_refused_with_the_table():
    with pytest.raises(gd.InvalidValue, match="unknown remedy 'magic_init'.*he_init"):
        lookup("magic_init")


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


def test_a_bound_remedy_is_the_function_of_the_same_name():
    torch.manual_seed(1)
    bound = lookup("he_init").apply(mlp(), Context())
    torch.manual_seed(1)
    direct = gd.remedies.he_init(mlp())
    for a, b in zip(bound.parameters(), direct.parameters()):
        assert torch.equal(a, b)


def test_a_name_with_an_argument_passes_it_and_inputs_reach_functions_that_take_them():
    with_layer_norm = lookup("insert_norm:layer").apply(mlp(), Context())
    assert sum(isinstance(m, nn.LayerNorm) for m in with_layer_norm.modules()) == 2  # after the two hidden Linears
    x = torch.randn(64, 6) * 40 + 7
    standardised = lookup("normalize_inputs").apply(copy.deepcopy(mlp()), Context(inputs=x))
    first = standardised(x)  # the standardiser in front of the model: x's own mean and population std (+ 1e-5)
    plain = mlp()((x - x.mean(0)) / (x.var(0, unbiased=False) + 1e-5).sqrt())
    assert torch.allclose(first, plain, atol=1e-4)
