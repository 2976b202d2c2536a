"""The one resumable result store: every producer of score rows (evals, steering, ablation, calibration) writes
through ``ResultStore``, so that an interrupted run resumes without re-scoring finished work.

What every caller gets:

- **single writer**: the store holds ``folder``'s write lock (``folder_lock``) from construction until
  ``close()`` (or garbage collection, or the end of a ``with`` block); a second writer gets a ``LockError``;
- **folder kind**: with ``kind`` the folder is claimed for that kind of artifact (``claim_folder``), so the
  store never writes into another tool's output, ``overwrite`` or not;
- **atomic units**: rows are written in units, each atomically (temporary file + rename): a killed run loses
  at most the unit it was writing, never leaves a torn file;
- **identity**: a unit of work is known by its key; ``done(key)`` says whether it is stored. With ``params``
  (the run's inputs: the caller hashes model content into them, ``models.provenance.content_params``) the
  store refuses to resume a folder holding results of other params (``ResumeError``; ``overwrite=True``
  discards them).

Two layouts of the same rows:

- **chunks** (``table=None``; steering, ablation, calibration): unit = a named chunk of rows,
  ``folder/chunks/<key>.jsonl``; ``write(rows, key)``; ``merge(name)`` writes ``folder/<name>`` (JSONL) from
  every chunk in key order. ``params`` live in ``folder/chunks/params.json``.
- **table** (``table="results.csv"``; evals): one table file, rewritten atomically after each unit
  (``write(rows)``: the rows are appended); ``key(row)`` gives each row's identity, ``done(key)`` whether a row
  of that key is stored, ``drop(keep)`` removes rows to score again (e.g. judged rows the judge failed on).
  The caller supplies the file's codec (``dump(rows) -> text``, ``load(path) -> rows``; default JSONL).

``cached(name, compute)``: a finished step's JSON beside the rows (a resumed run does not recompute it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from artifacts.atomic import atomic_write_json, atomic_write_text
from artifacts.errors import ResumeError, SelfModelError
from artifacts.folders import claim_folder
from artifacts.hashing import hash_jsonable
from artifacts.jsonl import read_jsonl
from artifacts.lock import folder_lock

__all__ = ["ResultStore", "ResumeError", "dump_jsonl", "load_jsonl"]

CHUNKS = "chunks"
PARAMS = "params.json"
MERGED_JSONL = "results.jsonl"  # ``merge``: the chunks' rows in one file beside the chunk folder


def dump_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return read_jsonl(path) if path.exists() and path.stat().st_size else []


class ResultStore:
    """Resumable rows under ``folder`` (see the module doc). Use as a context manager, or ``close()`` it."""

    def __init__(self, folder: str | os.PathLike | None, params: dict[str, Any] | None = None, overwrite: bool = False,
                 kind: str | None = None, table: str | None = None, key: Callable[[dict], Any] | None = None,
                 dump: Callable[[Sequence[dict]], str] = dump_jsonl,
                 load: Callable[[Path], list[dict]] = load_jsonl):
        self._key, self._dump, self._load = key, dump, load
        self._lock = contextlib.ExitStack()
        if table is not None and (params is not None or key is None):
            raise SelfModelError("ResultStore: a table store takes a row key function and no params "
                                 "(the rows themselves carry their identity)")
        if folder is None:  # a table kept in memory only (nothing to resume, nothing written)
            if table is None:
                raise SelfModelError("ResultStore: only a table store can live in memory (folder=None)")
            self.folder = self.table = None
            self._rows, self._keys, self.params_hash = [], set(), None
            return
        self.folder = Path(folder)
        self.table = None if table is None else self.folder / table
        self.dir = self.folder / CHUNKS
        self._lock.enter_context(folder_lock(self.folder))  # released by close()
        try:
            if kind is not None:
                claim_folder(self.folder, kind)
            self.params_hash = None if params is None else self._check_params(params, overwrite)
            self._rows = self._load(self.table) if self.table is not None else None
            self._keys = None if self._rows is None else {self._key(r) for r in self._rows}
        except BaseException:
            self._lock.close()
            raise

    # --- lifetime -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the folder's write lock (also done when the store is garbage-collected)."""
        self._lock.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._lock.close()

    def _check_params(self, params: dict[str, Any], overwrite: bool) -> str:
        h = hash_jsonable(params)
        pfile = self.dir / PARAMS
        if overwrite and self.dir.exists():
            shutil.rmtree(self.dir)
        if pfile.exists():
            old = json.loads(pfile.read_text()).get("hash")
            if old != h:
                raise ResumeError(f"{self.dir}: holds partial results of a run with other parameters "
                                  f"(hash {old} != {h}); pass a new output directory or --overwrite")
        else:
            atomic_write_json(pfile, {"hash": h, "params": params})
        return h

    # --- units ----------------------------------------------------------------------------------------

    @staticmethod
    def _safe(key: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", key)

    def path(self, key: str) -> Path:
        """The file of chunk ``key`` (chunk layout)."""
        return self.dir / f"{self._safe(key)}.jsonl"

    def done(self, key: Any) -> bool:
        """Whether the unit (chunk layout: a chunk name; table layout: a row key) is stored."""
        if self._keys is not None:
            return key in self._keys
        return self.path(key).exists()

    def write(self, rows: Sequence[dict[str, Any]], key: str | None = None) -> None:
        """Store one unit atomically: chunk ``key`` (chunk layout), or ``rows`` appended to the table."""
        if self._rows is None:
            if key is None:
                raise SelfModelError("ResultStore.write: the chunk layout needs the chunk's key")
            atomic_write_text(self.path(key), dump_jsonl(rows))
            return
        self._rows.extend(rows)
        self._keys.update(self._key(r) for r in rows)
        self._flush()

    def drop(self, remove: Callable[[dict], bool]) -> int:
        """Table layout: remove the rows ``remove`` accepts (to be scored again); the number removed."""
        keep = [r for r in self._rows if not remove(r)]
        n = len(self._rows) - len(keep)
        if n:
            self._rows = keep
            self._keys = {self._key(r) for r in keep}
        return n

    def _flush(self) -> None:
        if self.table is not None:
            atomic_write_text(self.table, self._dump(self._rows))

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row: the table's in file order, or the chunks' in key (file name) order."""
        if self._rows is not None:
            return list(self._rows)
        out: list[dict] = []
        for p in sorted(self.dir.glob("*.jsonl")):
            out.extend(read_jsonl(p))
        return out

    def merge(self, name: str = MERGED_JSONL) -> Path:
        """Chunk layout: write ``folder/<name>`` from every chunk (atomically); the table layout's file is
        always whole."""
        if self._rows is not None:
            return self.table
        return atomic_write_text(self.folder / name, dump_jsonl(self.rows()))

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """The JSON result of a finished step kept beside the chunks (computed once, then read back)."""
        path = self.dir / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        atomic_write_json(path, value)
        return value
