"""Reading and writing the SQLite run record (see `schema`).

    >>> store = RunStore.create("runs/a", resume=False)      # the writer, in the training process
    >>> reader = RunStore.open_readonly("runs/a")            # anywhere else, even while it trains
    >>> reader.series("layer", "grad_norm")                  # (steps, array steps × layers)

Each flush is one transaction; with WAL and ``synchronous=NORMAL`` a committed flush survives the
process being killed (SIGKILL): at most the steps not yet flushed are lost. A reader is a snapshot: it reads the
steps up to the last one written when it was opened, however many flushes land while it reads, and a record
whose header is not written yet reads as `starting` (no layers, no steps). One writer per log_dir (record/lock.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from ..errors import InvalidType, RecordError
from .lock import WriterLock
from .schema import BLOB_DTYPE, DDL, FILENAME, FORMAT, SCHEMA_VERSION

_NO_BOUND = 2**63 - 1  # a writer reads every step it wrote


@dataclass(frozen=True)
class LayerInfo:
    idx: int
    name: str
    kind: str
    activation: str | None
    position: int
    numel: int


@dataclass(frozen=True)
class ParamInfo:
    idx: int
    name: str
    shape: tuple[int, ...]
    numel: int
    requires_grad: bool
    layers: tuple[int, ...]


class RunStore:
    """One run record: an SQLite database on disk (or in memory when there is no log_dir)."""

    def __init__(self, connection: sqlite3.Connection, path: Path | None, *, writable: bool):
        self._db = connection
        self.path = path
        self.writable = writable
        self._names: set[str] | None = None  # scalar names, cached by the writer (only it adds any)
        self._last = _NO_BOUND  # the last step a reader reads (its snapshot); -1: none
        self.starting = False  # a reader of a record whose header is not written yet
        self._lock: WriterLock | None = None
        self._made: tuple[Path, ...] = ()  # what `create` made for a new record: `discard()` removes it

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, log_dir: str | Path | None, *, resume: bool = False, overwrite: bool = False) -> "RunStore":
        """Open a record for writing, holding the log_dir's writer lock until `close()`; an existing record is an
        error unless `resume` (append to it) or `overwrite` (delete it first). `discard()` instead of `close()`
        removes what a start that failed made."""
        if log_dir is None:
            store = cls(sqlite3.connect(":memory:", check_same_thread=False), None, writable=True)
            store._db.executescript(DDL)
            return store
        directory = as_path(log_dir, "gd.watch: log_dir")
        path = directory / FILENAME
        try:
            made = () if directory.is_dir() else (directory,)
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecordError(f"cannot write a run record in {str(directory)!r}: {err}") from err
        lock = WriterLock.acquire(directory)
        if path.exists() and overwrite:
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)  # under the writer lock: no other writer is using them
        if path.exists() and not resume:
            lock.release()
            raise RecordError(
                f"log_dir {str(directory)!r} already holds a run record ({path.name}). "
                "Pass resume=True to append to it, overwrite=True to start it over, or choose a new log_dir."
            )
        existed = path.exists()
        try:
            connection = sqlite3.connect(path, check_same_thread=False)
        except sqlite3.Error as err:
            lock.release()
            raise RecordError(f"cannot write a run record in {str(directory)!r}: {err}") from err
        store = cls(connection, path, writable=True)
        store._lock = lock
        store._made = made + (() if existed else (path, Path(f"{path}-wal"), Path(f"{path}-shm"), lock.path))
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            if existed and store._has_meta():
                store._check_format()
            else:
                connection.executescript(DDL)
        except (sqlite3.Error, RecordError) as err:
            store.discard()
            raise err if isinstance(err, RecordError) else RecordError(
                f"cannot write a run record in {str(directory)!r}: {err}") from err
        return store

    @classmethod
    def open_readonly(cls, log_dir: str | Path) -> "RunStore":
        """Open an existing record read-only, as a snapshot (see the module's docstring); a missing, unreadable,
        corrupt or foreign file is a RecordError."""
        directory = as_path(log_dir, "gd.load: log_dir")
        try:
            path = directory / FILENAME if directory.is_dir() else directory
            if not path.is_file():
                raise RecordError(
                    f"no gradient-doctor run record at {str(log_dir)!r}: expected a directory holding "
                    f"{FILENAME} (written by gd.watch(..., log_dir=...))."
                )
            uri = f"{path.resolve().as_uri()}?mode=ro"
        except OSError as err:  # e.g. a directory this user may not read
            raise RecordError(f"cannot read the run record at {str(log_dir)!r}: {err}") from err
        try:
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as err:
            raise RecordError(f"cannot open run record {str(path)!r}: {err}") from err
        store = cls(connection, path, writable=False)
        store._pin()
        return store

    def _pin(self) -> None:
        """A reader's snapshot, taken in one read transaction: the header checked, and the last step written now
        fixed as the last one it reads. A record without its header yet reads as starting: empty, not foreign."""
        self._query("BEGIN")
        try:
            try:
                tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            except sqlite3.DatabaseError as err:
                raise RecordError(f"{str(self.path)!r} is not a gradient-doctor run record: {err}") from err
            self.starting = not tables or ("meta" in tables and not self._query("SELECT count(*) FROM meta")[0][0])
            if not self.starting:
                self._check_format()
                (last,) = self._query("SELECT max(step) FROM steps")[0]
                self._last = -1 if last is None else int(last)
        finally:
            if self._db.in_transaction:
                self._db.execute("COMMIT")
        if self.starting:  # gd.watch is creating it: read as an empty record
            self._db.close()
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
            self._db.executescript(DDL)

    def _has_meta(self) -> bool:
        try:
            row = self._db.execute("SELECT count(*) FROM sqlite_master WHERE name='meta'").fetchone()
        except sqlite3.DatabaseError as err:
            raise RecordError(f"{str(self.path)!r} is not a gradient-doctor run record: {err}") from err
        return bool(row[0])

    def _check_format(self) -> None:
        if not self._has_meta():
            raise RecordError(f"{str(self.path)!r} is an SQLite file but not a gradient-doctor run record (no meta table).")
        meta = self.meta()
        if meta.get("format") != FORMAT:
            raise RecordError(
                f"{str(self.path)!r} is not a gradient-doctor run record: format is "
                f"{meta.get('format')!r}, expected {FORMAT!r}."
            )
        try:
            version = int(meta["schema_version"])
        except (KeyError, ValueError) as err:
            raise RecordError(
                f"{str(self.path)!r} is a corrupt gradient-doctor run record: schema_version is "
                f"{meta.get('schema_version')!r}, expected an integer."
            ) from err
        if version > SCHEMA_VERSION:
            raise RecordError(
                f"{str(self.path)!r} has record schema version {version}; this gradient-doctor reads "
                f"versions up to {SCHEMA_VERSION}. Upgrade gradient-doctor to read it."
            )

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    def discard(self) -> None:
        """Close, and remove the record file (and the log_dir) `create` made: a failed `gd.watch` leaves nothing
        behind, so a retry on the same log_dir works. A record that existed before (resume) is only closed."""
        self._db.close()
        for path in reversed(self._made):  # files first (the lock's while it is held), then the log_dir if empty
            if path.is_dir():
                if not any(path.iterdir()):
                    path.rmdir()
            else:
                path.unlink(missing_ok=True)
                if self._lock is not None and path == self._lock.path:
                    self._lock.release()
        if self._lock is not None:
            self._lock.release()

    # -- writing ---------------------------------------------------------------------------
    def write_header(self, meta: dict[str, str], layers: list[LayerInfo], params: list[ParamInfo]) -> None:
        """Write the run's description, or on resume check that the model is the same."""
        if self._has_meta() and self.meta().get("format") == FORMAT:
            known = [layer.name for layer in self.layers(order="idx")]
            if known != [layer.name for layer in layers]:
                raise RecordError(
                    f"cannot resume {str(self.path)!r}: it records layers {known[:5]}… "
                    f"({len(known)} layers), this model has {[layer.name for layer in layers][:5]}… "
                    f"({len(layers)} layers)."
                )
            recorded, current = [(p.name, p.shape) for p in self.params()], [(p.name, p.shape) for p in params]
            if recorded != current:  # same layer names, other parameters: the series would not line up
                was, now = next(pair for pair in zip_longest(recorded, current) if pair[0] != pair[1])
                raise RecordError(
                    f"cannot resume {str(self.path)!r}: it records parameter (name, shape) {was}, "
                    f"this model has {now}."
                )
            return
        with self._db:
            self._db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION)), *meta.items()],
            )
            self._db.executemany(
                "INSERT INTO layers VALUES (?, ?, ?, ?, ?, ?)",
                [(l.idx, l.name, l.kind, l.activation, l.position, l.numel) for l in layers],
            )
            self._db.executemany(
                "INSERT INTO params VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (p.idx, p.name, json.dumps(list(p.shape)), p.numel, int(p.requires_grad), json.dumps(list(p.layers)))
                    for p in params
                ],
            )

    def write_flush(
        self,
        positions: list[int] | None,
        steps: list[tuple[int, float, tuple[str, ...]]],
        blobs: list[tuple[int, str, str, np.ndarray]],
        scalars: list[tuple[int, str, float]],
        interventions: list[tuple[int, str, dict]] = (),
    ) -> None:
        """One transaction: layer positions (if known), steps, series blobs, run-level scalars and the guard's
        interventions (step, kind, detail)."""
        with self._db:
            if interventions:
                self._db.execute("CREATE TABLE IF NOT EXISTS interventions "
                                 "(step INTEGER NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL)")  # resumed old record
                self._db.executemany("INSERT INTO interventions VALUES (?, ?, ?)",
                                     [(s, kind, json.dumps(detail)) for s, kind, detail in interventions])
            if positions is not None:
                self._db.executemany(
                    "UPDATE layers SET position = ? WHERE idx = ?", [(rank, idx) for rank, idx in enumerate(positions)]
                )
            self._db.executemany(
                "INSERT OR REPLACE INTO steps VALUES (?, ?, ?)", [(s, t, ",".join(g)) for s, t, g in steps]
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO series VALUES (?, ?, ?, ?)",
                [(s, entity, metric, np.ascontiguousarray(data, dtype=BLOB_DTYPE).tobytes()) for s, entity, metric, data in blobs],
            )
            self._db.executemany("INSERT OR REPLACE INTO step_values VALUES (?, ?, ?)", scalars)
        if self._names is not None:
            self._names.update(name for _, name, _ in scalars)

    # -- reading ---------------------------------------------------------------------------
    def interventions(self) -> list[tuple[int, str, dict]]:
        """(step, kind, detail) of every guard intervention, in step order; none in a record without the table."""
        if not self._query("SELECT count(*) FROM sqlite_master WHERE name='interventions'")[0][0]:
            return []
        rows = self._query("SELECT step, kind, detail FROM interventions WHERE step <= ? ORDER BY step, rowid",
                           (self._last,))
        try:
            return [(int(step), str(kind), dict(json.loads(detail))) for step, kind, detail in rows]
        except (ValueError, TypeError) as err:
            raise RecordError(f"{str(self.path)!r}: a corrupt guard intervention: {err}") from err

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def layers(self, order: str = "position") -> list[LayerInfo]:
        column = "position" if order == "position" else "idx"
        return [LayerInfo(*row) for row in self._query(f"SELECT * FROM layers ORDER BY {column}, idx")]

    def params(self) -> list[ParamInfo]:
        rows = self._query("SELECT * FROM params ORDER BY idx")
        try:
            return [
                ParamInfo(idx, name, tuple(json.loads(shape)), numel, bool(rg), tuple(json.loads(layers)))
                for idx, name, shape, numel, rg, layers in rows
            ]
        except (ValueError, TypeError) as err:
            raise RecordError(f"corrupt run record {str(self.path)!r}: a parameter's shape or layers are not the "
                              f"JSON lists expected ({err}).") from err

    def steps(self, since: int | None = None) -> np.ndarray:
        rows = self._query("SELECT step FROM steps WHERE step BETWEEN ? AND ? ORDER BY step", (_first(since), self._last))
        return np.array([s for (s,) in rows], dtype=np.int64)

    def step_times(self) -> np.ndarray:
        rows = self._query("SELECT time FROM steps WHERE step <= ? ORDER BY step", (self._last,))
        return np.array([t for (t,) in rows], dtype=np.float64)

    def last_step(self) -> int | None:
        (last,) = self._query("SELECT max(step) FROM steps WHERE step <= ?", (self._last,))[0]
        return last

    def series(self, entity: str, metric: str, width: int, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values[steps, width]) of every blob stored for `metric` of `entity` (at steps ≥ `since`)."""
        return self.series_of(entity, (metric,), width, since)[metric]

    def series_of(self, entity: str, metrics: tuple[str, ...], width: int,
                  since: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """`series` of several metrics of `entity` in one query: {metric: (steps, values[steps, width])}.

            >>> store.series_of("layer", ("grad_norm", "update_norm"), n_layers, since=100)["grad_norm"][1].shape
        """
        marks = ", ".join("?" * len(metrics))
        rows = self._query(
            f"SELECT metric, step, data FROM series WHERE entity = ? AND metric IN ({marks}) AND step BETWEEN ? AND ? "
            "ORDER BY metric, step", (entity, *metrics, _first(since), self._last),
        )
        by_metric: dict[str, list[tuple[int, bytes]]] = {metric: [] for metric in metrics}
        for metric, step, data in rows:
            by_metric[metric].append((step, data))
        return {metric: self._decoded(entity, metric, width, found) for metric, found in by_metric.items()}

    def _decoded(self, entity: str, metric: str, width: int,
                 rows: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values[steps, width]) of (step, blob) rows, decoded in one piece (read-only); a RecordError for a
        blob that is not `width` float64s."""
        size = width * np.dtype(BLOB_DTYPE).itemsize
        for _, data in rows:
            if not isinstance(data, bytes) or len(data) != size:
                raise self._malformed(entity, metric, width, data)
        steps = np.array([s for s, _ in rows], dtype=np.int64)
        return steps, np.frombuffer(b"".join(data for _, data in rows), dtype=BLOB_DTYPE).reshape(len(rows), width)

    def _malformed(self, entity: str, metric: str, width: int, data: object) -> RecordError:
        """The RecordError for a blob `data` that is not `width` float64s (raised here when it is no float64s)."""
        (decoded,) = self._frombuffers(entity, metric, [(0, data)])
        return RecordError(f"corrupt run record {str(self.path)!r}: {entity} metric {metric!r} has {decoded.size} "
                           f"values at one step, expected {width}.")

    def blobs(self, entity: str, metric: str, since: int | None = None) -> list[tuple[int, np.ndarray]]:
        """(step, decoded float64 blob) of every row stored for `metric` of `entity` at steps ≥ `since`, by step."""
        rows = self._query(
            "SELECT step, data FROM series WHERE entity = ? AND metric = ? AND step BETWEEN ? AND ? ORDER BY step",
            (entity, metric, _first(since), self._last),
        )
        return list(zip([step for step, _ in rows], self._frombuffers(entity, metric, rows)))

    def _frombuffers(self, entity: str, metric: str, rows: list[tuple[int, bytes]]) -> list[np.ndarray]:
        """The float64 arrays of (step, blob) rows."""
        try:
            return [np.frombuffer(data, dtype=BLOB_DTYPE) for _, data in rows]
        except (ValueError, TypeError) as err:  # a blob whose length is not a whole number of float64s, or not bytes
            raise RecordError(f"corrupt run record {str(self.path)!r}: a {entity} {metric!r} blob is not little-endian "
                              f"float64 ({err}).") from err

    def scalar_names(self) -> list[str]:
        """Names of the run-level scalars, sorted; the writer reads them once, then keeps them up to date."""
        if self._names is not None:
            return sorted(self._names)
        rows = self._query("SELECT DISTINCT name FROM step_values WHERE step <= ? ORDER BY name", (self._last,))
        names = [n for (n,) in rows]
        if self.writable:
            self._names = set(names)
        return names

    def scalar(self, name: str, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._query(
            "SELECT step, value FROM step_values WHERE name = ? AND step BETWEEN ? AND ? ORDER BY step",
            (name, _first(since), self._last),
        )
        try:
            values = np.array([np.nan if v is None else v for _, v in rows], dtype=np.float64)
        except (ValueError, TypeError) as err:
            raise RecordError(f"corrupt run record {str(self.path)!r}: run-level metric {name!r} holds a value that "
                              f"is not a number ({err}).") from err
        return np.array([s for s, _ in rows], dtype=np.int64), values

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise RecordError(f"cannot read run record {str(self.path)!r}: {err}") from err


def as_path(log_dir: str | os.PathLike, what: str) -> Path:
    """`log_dir` as a Path; InvalidType naming `what` for anything else (an int, None where a path is needed)."""
    if not isinstance(log_dir, (str, os.PathLike)):
        raise InvalidType(f"{what} must be a directory (str or pathlib.Path), got {type(log_dir).__name__}: {log_dir!r:.80}")
    return Path(log_dir)


def _first(since: int | None) -> int:
    """The first step a read covers: all of them (-1 and up; steps are 0-based) when `since` is None."""
    return -1 if since is None else int(since)
