"""A staged runner: each stage has a folder, a key and a ``stage.json`` record written last.

A stage's key is the hash of its own parameters and the keys of the stages it depends on, so
- re-running a finished pipeline skips every stage (same keys);
- changing one input changes the key of that stage and of every stage downstream of it, and
  exactly those re-run;
- a failed stage leaves no ``stage.json``, stops the run with a message naming it, and leaves the
  folders of earlier stages untouched; the next run resumes there (stage libraries resume inside
  their own folder where they can);
- a stage records the key it started with (``.started.json``): an interrupted stage whose key has
  changed since starts clean, so a library never resumes from outputs of other inputs;
- ``stage.json`` records the content hash of each upstream stage's folder: a stage whose upstream
  outputs were removed, replaced or re-made is not "up to date", even when its key is the same;
- ``--only`` names (a stage, or a group such as ``tune``) are checked before anything runs, and a selected
  stage whose upstream stages have not finished with the current inputs is refused;
- the run directory is locked for the run (one writer).
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

from artifacts import SelfModelError, atomic_write_json, folder_lock, hash_jsonable, hash_path
from artifacts.manifest import library_versions

RECORD = "stage.json"
STARTED = ".started.json"


class StageSelectionError(SelfModelError):
    """``--only`` names a stage that does not exist, or one whose upstream outputs are missing."""


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
        self._hashes: dict[str, str | None] = {}  # upstream folder hashes, memoised within one run
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

    @staticmethod
    def _started(folder: Path) -> str | None:
        try:
            return json.loads((folder / STARTED).read_text()).get("key")
        except (OSError, ValueError, AttributeError):
            return None

    def folder(self, name: str) -> Path:
        return self.run_dir / name

    def record(self, name: str) -> dict[str, Any] | None:
        path = self.folder(name) / RECORD
        return json.loads(path.read_text()) if path.exists() else None

    def upstream(self, name: str) -> dict[str, str | None]:
        """The content hash of each upstream stage's folder (None when it is missing)."""
        stage = next(s for s in self.stages if s.name == name)
        out = {}
        for d in stage.after:
            folder = self.folder(d)
            if d not in self._hashes:
                self._hashes[d] = hash_path(folder, exclude=()) if (folder / RECORD).exists() else None
            out[d] = self._hashes[d]
        return out

    def is_done(self, name: str, key: str) -> bool:
        rec = self.record(name)
        return (rec is not None and rec.get("key") == key
                and rec.get("upstream", self.upstream(name)) == self.upstream(name))

    def select(self, only: list[str] | None) -> list[str]:
        """The stage names ``only`` picks (a name, or the group before '/', e.g. ``tune``); all when empty."""
        names = [s.name for s in self.stages]
        if not only:
            return names
        unknown = [o for o in only if o not in names and not any(n.split("/")[0] == o for n in names)]
        if unknown:
            groups = sorted({n.split("/")[0] for n in names if "/" in n})
            raise StageSelectionError(f"--only {' '.join(unknown)}: no such stage; stages: {', '.join(names)}"
                                      f"{' (groups: ' + ', '.join(groups) + ')' if groups else ''}")
        return [n for n in names if n in only or n.split("/")[0] in only]

    def _check_upstream_ready(self, chosen: list[str], keys: dict[str, str]) -> None:
        for s in self.stages:
            if s.name not in chosen:
                continue
            missing = [d for d in s.after if d not in chosen and not self.is_done(d, keys[d])]
            if missing:
                raise StageSelectionError(
                    f"--only {s.name}: needs the outputs of {', '.join(missing)}, which have not finished with the "
                    f"current config; add them (--only {' '.join(missing)} {s.name}) or run without --only")

    def run(self, only: list[str] | None = None) -> list[StageResult]:
        with folder_lock(self.run_dir):
            return self._run(only)

    def _run(self, only: list[str] | None) -> list[StageResult]:
        self._hashes = {}
        keys = self.keys()
        chosen = self.select(only)
        if only:
            self._check_upstream_ready(chosen, keys)
        results = []
        for i, s in enumerate(self.stages, 1):
            if s.name not in chosen:
                continue
            folder, key = self.folder(s.name), keys[s.name]
            tag = f"[{i}/{len(self.stages)}] {s.name}"
            if self.is_done(s.name, key):
                rec = self.record(s.name)
                self.log(f"{tag}: up to date, skipped")
                results.append(StageResult(s.name, "skipped", 0.0, key, rec.get("summary")))
                continue
            old = self.record(s.name)
            started = self._started(folder)
            if old is not None or (folder.exists() and started != key):
                shutil.rmtree(folder)  # finished, or interrupted, with other inputs: start clean
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / STARTED, {"key": key})
            self._hashes.pop(s.name, None)
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
                                                "after": {d: keys[d] for d in s.after},
                                                "upstream": self.upstream(s.name), "seconds": round(dt, 2),
                                                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                "versions": library_versions(), "summary": summary})
            self._hashes.pop(s.name, None)
            self.log(f"{tag}: done in {dt:.1f}s")
            results.append(StageResult(s.name, "ran", dt, key, summary))
        return results
