"""A staged runner: each stage has a folder, a key and a ``stage.json`` record written last.

A stage's key is the hash of its own parameters and the keys of the stages it depends on, so
- re-running a finished pipeline skips every stage (same keys);
- changing one input changes the key of that stage and of every stage downstream of it, and
  exactly those re-run;
- a failed stage leaves no ``stage.json``, stops the run with a message naming it, and leaves the
  folders of earlier stages untouched; the next run resumes there (stage libraries resume inside
  their own folder where they can).
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artifacts import atomic_write_json, hash_jsonable
from artifacts.manifest import library_versions

RECORD = "stage.json"


class StageFailed(RuntimeError):
    def __init__(self, stage: str, cause: BaseException):
        super().__init__(f"stage '{stage}' failed: {type(cause).__name__}: {cause}")
        self.stage = stage
        self.cause = cause


@dataclass
class Stage:
    name: str  # also the folder under the run directory, e.g. "tune/conscious"
    run: Callable[[Path], dict[str, Any] | None]  # writes into its folder; may return a summary
    params: dict[str, Any] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)  # names of the stages it reads


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    key: str
    summary: dict[str, Any] | None = None


class Pipeline:
    def __init__(self, run_dir: str | Path, stages: list[Stage], log: Callable[[str], None] = print):
        self.run_dir = Path(run_dir)
        self.stages = stages
        self.log = log
        names = [s.name for s in stages]
        for s in stages:
            missing = [d for d in s.after if d not in names[: names.index(s.name)]]
            if missing:
                raise ValueError(f"stage {s.name!r} depends on {missing}, which do not run before it")

    def keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for s in self.stages:
            keys[s.name] = hash_jsonable({"stage": s.name, "params": s.params,
                                          "after": {d: keys[d] for d in s.after}})
        return keys

    def folder(self, name: str) -> Path:
        return self.run_dir / name

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.folder(name) / RECORD
        return json.loads(path.read_text()) if path.exists() else None

    def is_done(self, name: str, key: str) -> bool:
        rec = self.record(name)
        return rec is not None and rec.get("key") == key

    def run(self, only: list[str] | None = None) -> list[StageResult]:
        keys = self.keys()
        results = []
        for i, s in enumerate(self.stages, 1):
            if only and s.name not in only:
                continue
            folder, key = self.folder(s.name), keys[s.name]
            tag = f"[{i}/{len(self.stages)}] {s.name}"
            if self.is_done(s.name, key):
                rec = self.record(s.name)
                self.log(f"{tag}: up to date, skipped")
                results.append(StageResult(s.name, "skipped", 0.0, key, rec.get("summary")))
                continue
            old = self.record(s.name)
            if old is not None:  # finished earlier with other inputs: start clean
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
            self.log(f"{tag}: running")
            t0 = time.time()
            try:
                summary = s.run(folder)
            except Exception as exc:
                (folder / "error.txt").write_text(traceback.format_exc())
                self.log(f"{tag}: FAILED after {time.time() - t0:.1f}s: {type(exc).__name__}: {exc}\n"
                         f"  traceback: {folder / 'error.txt'}; earlier stages are intact; re-run to resume")
                raise StageFailed(s.name, exc) from exc
            dt = time.time() - t0
            (folder / "error.txt").unlink(missing_ok=True)
            atomic_write_json(folder / RECORD, {"stage": s.name, "key": key, "params": s.params,
                                                "after": {d: keys[d] for d in s.after}, "seconds": round(dt, 2),
                                                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                "versions": library_versions(), "summary": summary})
            self.log(f"{tag}: done in {dt:.1f}s")
            results.append(StageResult(s.name, "ran", dt, key, summary))
        return results
