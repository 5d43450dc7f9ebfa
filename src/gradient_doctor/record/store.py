"""Reading and writing the SQLite run record (see `schema`).

    >>> store = RunStore.create("runs/a", resume=False)      # the writer, in the training process
    >>> reader = RunStore.open_readonly("runs/a")            # anywhere else, even while it trains
    >>> reader.series("layer", "grad_norm")                  # (steps, array steps × layers)

Each flush is one transaction; with WAL and ``synchronous=NORMAL`` a committed flush survives the
process being killed (SIGKILL): at most the steps not yet flushed are lost.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from ..errors import RecordError
from .schema import BLOB_DTYPE, DDL, FILENAME, FORMAT, SCHEMA_VERSION


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

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, log_dir: str | Path | None, *, resume: bool = False) -> "RunStore":
        """Open a record for writing; an existing record is an error unless `resume`."""
        if log_dir is None:
            store = cls(sqlite3.connect(":memory:", check_same_thread=False), None, writable=True)
            store._db.executescript(DDL)
            return store
        directory = Path(log_dir)
        path = directory / FILENAME
        if path.exists() and not resume:
            raise RecordError(
                f"log_dir {str(directory)!r} already holds a run record ({path.name}). "
                "Pass resume=True to append to it, or choose a new log_dir."
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        except (OSError, sqlite3.Error) as err:
            raise RecordError(f"cannot write a run record in {str(directory)!r}: {err}") from err
        store = cls(connection, path, writable=True)
        if path.exists() and resume and store._has_meta():
            store._check_format()
        else:
            try:
                connection.executescript(DDL)
            except sqlite3.Error as err:
                raise RecordError(f"cannot write a run record in {str(directory)!r}: {err}") from err
        return store

    @classmethod
    def open_readonly(cls, log_dir: str | Path) -> "RunStore":
        """Open an existing record read-only; a missing, corrupt or foreign file is a RecordError."""
        directory = Path(log_dir)
        path = directory / FILENAME if directory.is_dir() else directory
        if not path.is_file():
            raise RecordError(
                f"no gradient-doctor run record at {str(log_dir)!r}: expected a directory holding "
                f"{FILENAME} (written by gd.watch(..., log_dir=...))."
            )
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as err:
            raise RecordError(f"cannot open run record {str(path)!r}: {err}") from err
        store = cls(connection, path, writable=False)
        store._check_format()
        return store

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
    ) -> None:
        """One transaction: layer positions (if known), steps, series blobs and run-level scalars."""
        with self._db:
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
    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def layers(self, order: str = "position") -> list[LayerInfo]:
        column = "position" if order == "position" else "idx"
        return [LayerInfo(*row) for row in self._query(f"SELECT * FROM layers ORDER BY {column}, idx")]

    def params(self) -> list[ParamInfo]:
        return [
            ParamInfo(idx, name, tuple(json.loads(shape)), numel, bool(rg), tuple(json.loads(layers)))
            for idx, name, shape, numel, rg, layers in self._query("SELECT * FROM params ORDER BY idx")
        ]

    def steps(self, since: int | None = None) -> np.ndarray:
        rows = self._query("SELECT step FROM steps WHERE step >= ? ORDER BY step", (_first(since),))
        return np.array([s for (s,) in rows], dtype=np.int64)

    def step_times(self) -> np.ndarray:
        return np.array([t for (t,) in self._query("SELECT time FROM steps ORDER BY step")], dtype=np.float64)

    def last_step(self) -> int | None:
        (last,) = self._query("SELECT max(step) FROM steps")[0]
        return last

    def series(self, entity: str, metric: str, width: int, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values[steps, width]) of every blob stored for `metric` of `entity` (at steps ≥ `since`)."""
        rows = self.blobs(entity, metric, since)
        steps = np.array([s for s, _ in rows], dtype=np.int64)
        values = np.full((len(rows), width), np.nan)
        for i, (_, decoded) in enumerate(rows):
            if decoded.size != width:
                raise RecordError(
                    f"corrupt run record {str(self.path)!r}: {entity} metric {metric!r} has {decoded.size} "
                    f"values at one step, expected {width}."
                )
            values[i] = decoded
        return steps, values

    def blobs(self, entity: str, metric: str, since: int | None = None) -> list[tuple[int, np.ndarray]]:
        """(step, decoded float64 blob) of every row stored for `metric` of `entity` at steps ≥ `since`, by step."""
        rows = self._query(
            "SELECT step, data FROM series WHERE entity = ? AND metric = ? AND step >= ? ORDER BY step",
            (entity, metric, _first(since)),
        )
        return [(step, np.frombuffer(data, dtype=BLOB_DTYPE)) for step, data in rows]

    def scalar_names(self) -> list[str]:
        """Names of the run-level scalars, sorted; the writer reads them once, then keeps them up to date."""
        if self._names is not None:
            return sorted(self._names)
        names = [n for (n,) in self._query("SELECT DISTINCT name FROM step_values ORDER BY name")]
        if self.writable:
            self._names = set(names)
        return names

    def scalar(self, name: str, since: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._query(
            "SELECT step, value FROM step_values WHERE name = ? AND step >= ? ORDER BY step", (name, _first(since))
        )
        return np.array([s for s, _ in rows], dtype=np.int64), np.array(
            [np.nan if v is None else v for _, v in rows], dtype=np.float64
        )

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:
            raise RecordError(f"cannot read run record {str(self.path)!r}: {err}") from err


def _first(since: int | None) -> int:
    """The first step a read covers: all of them (-1 and up; steps are 0-based) when `since` is None."""
    return -1 if since is None else int(since)
