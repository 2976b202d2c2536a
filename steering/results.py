"""Resumable results: one JSONL chunk per unit of work, written atomically, then merged.

``ChunkStore(out_dir, params)`` keeps ``out_dir/chunks/<key>.jsonl``. A chunk either exists whole or
not at all (atomic rename), so a killed run resumes by skipping the chunks that exist. The params of
the run are hashed into ``out_dir/chunks/params.json``; resuming with different params is refused
(use a new directory or ``overwrite=True``). ``merge(name)`` writes ``out_dir/<name>`` from all chunks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from artifacts import atomic_write_json, atomic_write_text, hash_jsonable, read_jsonl


class ResumeError(ValueError):
    pass


class ChunkStore:
    def __init__(self, out_dir: str | os.PathLike, params: dict[str, Any], overwrite: bool = False):
        self.dir = Path(out_dir) / "chunks"
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
