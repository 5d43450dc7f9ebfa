"""Gradient histograms in the record: one `series` blob per detail step, entity `hist`, metric `grad_log10`.

    >>> h = run.gradient_histograms()          # Run's reader, built on `read` below
    >>> h.steps, h.edges.shape, h.counts.shape  # detail steps; log10 |g| edges; steps × layers × bins
    (array([0, 50, 100]), (101,), (3, 41, 100))

A blob is little-endian float64 like every other: ``[low, high, bins]`` (the log10 |g| range and bin
count), then per layer in ``idx`` order ``[zeros, non-finite, count of bin 0, …, count of bin bins-1]``
(NaN for a layer without a gradient; counts of parameters over 65,536 entries are estimates from a sample,
scaled to the parameter's size). Storing the bins in each blob keeps the record readable if a later
version changes them. See probe/histograms.py for what is counted and docs/record.md for the layout.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import RecordError
from ..probe.histograms import BINS, COLUMNS, HIGH, LOW, NONFINITE, ZEROS, bin_edges
from .schema import HISTOGRAM_ENTITY, HISTOGRAM_METRIC
from .store import RunStore

_HEADER = 3  # low, high, bins


class GradientHistograms(NamedTuple):
    """Per-layer histograms of log10 |g| at the steps that measured them (the detail steps)."""

    steps: np.ndarray  # [steps] int64
    edges: np.ndarray  # [bins + 1] log10 |g|; entries beyond the ends are counted in the first / last bin
    counts: np.ndarray  # [steps, layers, bins] ([steps, bins] for one layer); NaN: layer without a gradient
    zeros: np.ndarray  # [steps, layers] ([steps]) exact zeros, in no bin
    nonfinite: np.ndarray  # [steps, layers] ([steps]) inf and NaN entries, in no bin


def encode(histograms: np.ndarray) -> np.ndarray:
    """The blob of one step: the header, then `histograms` (layers × (zeros, non-finite, bins)) row-major."""
    return np.concatenate([[LOW, HIGH, float(BINS)], np.asarray(histograms, dtype=np.float64).reshape(-1)])


def read(store: RunStore, columns: list[int], since: int | None = None) -> GradientHistograms:
    """The recorded histograms of the layers whose `idx` are `columns` (in that order), at steps ≥ `since`."""
    n_layers = len(store.layers(order="idx"))
    rows = store.blobs(HISTOGRAM_ENTITY, HISTOGRAM_METRIC, since)
    edges, width = bin_edges(), COLUMNS
    blocks = []
    for step, blob in rows:
        if blob.size < _HEADER or not 1 <= blob[2] < blob.size or blob.size != _HEADER + n_layers * (int(blob[2]) + 2):
            raise RecordError(f"corrupt run record {str(store.path)!r}: the gradient histogram of step {step} has "
                              f"{blob.size} values, expected 3 + {n_layers} layers × (bins + 2).")
        low, high, bins = float(blob[0]), float(blob[1]), int(blob[2])
        step_edges = bin_edges(low, high, bins)
        if blocks and not np.array_equal(step_edges, edges):
            raise RecordError(f"run record {str(store.path)!r}: the gradient histograms change bins at step {step} "
                              f"({low:g}…{high:g} in {bins}, expected {edges[0]:g}…{edges[-1]:g} in {len(edges) - 1}).")
        edges, width = step_edges, bins + 2
        blocks.append(blob[_HEADER:].reshape(n_layers, width)[columns])
    table = np.stack(blocks) if blocks else np.zeros((0, len(columns), width))
    return GradientHistograms(np.array([s for s, _ in rows], dtype=np.int64), edges, table[..., 2:],
                              table[..., ZEROS], table[..., NONFINITE])
