"""Resumable results: one JSONL chunk per unit of work, written atomically, then merged.

``ChunkStore(out_dir, params)`` keeps ``out_dir/chunks/<key>.jsonl``. A chunk either exists whole or
not at all (atomic rename), so a killed run resumes by skipping the chunks that exist. The params of
the run are hashed into ``out_dir/chunks/params.json``; resuming with different params is refused
(use a new directory or ``overwrite=True``). ``merge(name)`` writes ``out_dir/<name>`` from all chunks.

Identity: every model spec in ``params`` (a dict with a ``base`` field, e.g. ``params["model"]``) is keyed by
the content hash of its weights and adapter too, so chunks of another model under the same folder names
are never reused. The store holds ``out_dir``'s write lock while it lives, and refuses a folder holding
another kind of artifact (``params["experiment"]``: ``steering`` or ``ablation``), ``overwrite`` or not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from artifacts import (
    ResumeError,
    atomic_write_json,
    atomic_write_text,
    claim_folder,
    folder_lock,
    hash_jsonable,
    read_jsonl,
)
from models import ModelSpec
from models.provenance import spec_hash

__all__ = ["ChunkStore", "ResumeError", "content_params"]


def content_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` plus the content hash (weights + adapter) of every model spec it names."""
    hashes = {f"{k}_sha256": spec_hash(ModelSpec.from_dict(v)) for k, v in params.items()
              if isinstance(v, dict) and "base" in v and "adapter" in v}
    return {**params, **hashes}


class ChunkStore:
    def __init__(self, out_dir: str | os.PathLike, params: dict[str, Any], overwrite: bool = False):
        self.dir = Path(out_dir) / "chunks"
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(folder_lock(out_dir))  # released when the store is dropped
        claim_folder(out_dir, str(params.get("experiment") or "chunks"))
        params = content_params(params)
        self.params_hash = hash_jsonable(params)
        pfile = self.dir / "params.json"
        if overwrite and self.dir.exists():
            shutil.rmtree(self.dir)
        if pfile.exists():
            old = json.loads(pfile.read_text()).get("hash")
            if old != self.params_hash:
                raise ResumeError(f"{self.dir}: holds partial results of a run with other parameters "
                                  f"(hash {old} != {self.params_hash}); pass a new output directory or --overwrite")
        else:
            atomic_write_json(pfile, {"hash": self.params_hash, "params": params})

    def close(self) -> None:
        """Release the folder's write lock (also done when the store is garbage-collected)."""
        self._lock.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._lock.close()

    @staticmethod
    def _safe(key: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", key)

    def path(self, key: str) -> Path:
        return self.dir / f"{self._safe(key)}.jsonl"

    def done(self, key: str) -> bool:
        return self.path(key).exists()

    def write(self, key: str, rows: list[dict]) -> None:
        atomic_write_text(self.path(key), "".join(json.dumps(r) + "\n" for r in rows))

    def rows(self) -> list[dict]:
        out: list[dict] = []
        for p in sorted(self.dir.glob("*.jsonl")):
            out.extend(read_jsonl(p))
        return out

    def merge(self, name: str = "results.jsonl") -> Path:
        rows = self.rows()
        return atomic_write_text(self.dir.parent / name, "".join(json.dumps(r) + "\n" for r in rows))
