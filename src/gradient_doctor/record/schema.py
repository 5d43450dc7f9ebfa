"""The on-disk run record: one SQLite file, `run.db`, in WAL mode. Version 1.

    >>> sqlite3.connect("runs/a/run.db").execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    ('1',)

Tables (documented in docs/record.md):

* ``meta(key, value)`` — ``format`` = ``gradient-doctor-run``, ``schema_version``, ``created``,
  ``library_version``, ``torch_version``, ``model``, ``config`` (JSON of the watch settings).
* ``layers(idx, name, kind, activation, position, numel)`` — ``idx`` is the column of the layer in
  every series blob; ``position`` is its rank in forward (first-call) order.
* ``params(idx, name, shape, numel, requires_grad, layers)`` — ``layers`` is a JSON list of layer idx.
* ``steps(step, time, groups)`` — one row per recorded step; ``groups`` lists what was measured.
* ``step_values(step, name, value)`` — run-level scalars: ``loss`` and user metrics.
* ``series(step, entity, metric, data)`` — ``entity`` is ``layer`` or ``param``; ``data`` is the
  metric for every layer (or parameter) in idx order, as little-endian float64 (NaN: not measured).
  Entity ``hist``, metric ``grad_log10``: the per-layer gradient histograms of a detail step (record/histograms.py);
  an addition within version 1 that older readers skip (they read series by entity and metric).
* ``interventions(step, kind, detail)`` — what the in-loop guard did (``gd.watch(..., guard=True)``): ``kind`` is
  ``skipped_update``, ``clipped_spike`` or ``rolled_back``; ``detail`` is a JSON object of numbers and strings.
  An addition within version 1: a record without the table has no interventions.

Nothing in the record is pickled; readers decode blobs with ``numpy.frombuffer``.
"""

from __future__ import annotations

FORMAT = "gradient-doctor-run"
SCHEMA_VERSION = 1
FILENAME = "run.db"
BLOB_DTYPE = "<f8"
HISTOGRAM_ENTITY, HISTOGRAM_METRIC = "hist", "grad_log10"  # series rows of the gradient histograms

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    idx INTEGER PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, activation TEXT,
    position INTEGER NOT NULL, numel INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS params (
    idx INTEGER PRIMARY KEY, name TEXT NOT NULL, shape TEXT NOT NULL, numel INTEGER NOT NULL,
    requires_grad INTEGER NOT NULL, layers TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, time REAL NOT NULL, groups TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS step_values (
    step INTEGER NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (step, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    step INTEGER NOT NULL, entity TEXT NOT NULL, metric TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (entity, metric, step)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS interventions (step INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL);
"""
