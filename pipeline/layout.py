"""The run directory's layout: every path of ``runs/<name>/`` comes from one ``RunLayout``.

::

    config.toml                      the resolved configuration (RunLayout.config)
    tune/<tune>[/seed<k>]/           a LoRA tune: condition, or series tune <condition>+u<pct> (RunLayout.tune)
    tune/instructions-s<seed>.jsonl  the distilled instruction mix (RunLayout.distill_cache)
    contamination/ identity/ activations/<model>/<dataset>/ probes/ evals/ ablation/ steering/ [judged/]
    profile/ patching/ prevention/ report/   one folder per stage (a stage's name = its folder)
    judge/                           the judge's caches, outside every stage folder
    <stage>/stage.json, <stage>/manifest.json   the runner's record and the stage's manifest

A stage folder is a ``Folder``: ``.name`` (the stage name, relative to the run), ``.path``, ``.manifest``,
``.record``, and one attribute per file the pipeline or the report reads. Nothing here creates a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from artifacts.manifest import MANIFEST
from pipeline.runner import RECORD


class _File:
    """A file of a folder: ``Folder.<attr>`` is its path; on the class, ``.filename`` is its bare name."""

    def __init__(self, filename: str):
        self.filename = filename

    def __get__(self, obj: Folder | None, owner: type | None = None) -> Any:
        return self if obj is None else obj.path / self.filename


class Folder(os.PathLike):
    """A folder of the run directory; ``name`` is its path relative to the run (for a stage: the stage name)."""

    manifest = _File(MANIFEST)
    record = _File(RECORD)

    def __init__(self, root: str | os.PathLike, name: str):
        self.root, self.name = Path(root), name

    @classmethod
    def at(cls, path: str | os.PathLike) -> Folder:
        """The folder at ``path`` (anywhere, e.g. a stage library's ``out_dir``), named by its last part."""
        path = Path(path)
        return cls(path.parent, path.name)

    @property
    def path(self) -> Path:
        return self.root / self.name

    def files(self) -> dict[str, Path]:
        """{attribute: path} of every file the folder names (its manifest and stage record included)."""
        return {k: getattr(self, k) for c in type(self).__mro__ for k, v in vars(c).items() if isinstance(v, _File)}

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class ContaminationDir(Folder):
    report = _File("contamination.json")


class IdentityDir(Folder):
    result = _File("identity_check.json")
    scores = _File("identity_check.csv")  # one row per model x question
    plot = _File("identity_check.png")


class ActivationsDir(Folder):
    def cache(self, model_slug: str, dataset: str) -> Path:
        """One activation cache: ``activations/<model slug>/<dataset>/`` (written by ``probes.run``)."""
        return self.path / model_slug / dataset


class ProbesDir(Folder):
    directions = _File("directions.safetensors")
    curves = _File("curves_base.png")
    cosine_heatmap = _File("cosine_heatmap.png")
    reading = _File("reading.png")


class EvalsDir(Folder):
    results = _File("results.csv")
    item_audit = _File("item_audit.json")
    agreement = _File("agreement.csv")

    def preference_plots(self) -> list[Path]:
        """``preferences_<scorer>.png``, one per scorer, sorted."""
        return sorted(self.path.glob("preferences_*.png"))


class AblationDir(Folder):
    results = _File("results.jsonl")
    necessity = _File("necessity.csv")


class SteeringDir(Folder):
    results = _File("results.jsonl")
    verdict = _File("verdict.csv")
    effects = _File("effects.csv")
    coherence = _File("coherence.csv")
    calibration = _File("calibration.csv")
    rule = _File("steering.md")  # holds the decision rule the report quotes

    @property
    def judged(self) -> SteeringDir:
        """The judged scorer's steering run, ``steering/judged/`` (same files)."""
        return SteeringDir(self.root, f"{self.name}/judged")

    def plots(self) -> list[Path]:
        """Every figure under the folder (dose-response), sorted."""
        return sorted(self.path.rglob("*.png"))


class ProfileDir(Folder):
    table = _File("profile.csv")
    plot = _File("profile.png")


class PatchingDir(Folder):
    table = _File("patching.csv")
    plot = _File("patching.png")


class PreventionDir(Folder):
    table = _File("prevention.csv")
    blocking = _File("blocking.csv")
    plot = _File("series.png")


class ReportDir(Folder):
    tables = _File("tables.json")
    markdown = _File("report.md")
    html = _File("report.html")
    figures = _File("figures")


class JudgeDir(Folder):
    cache = _File("cache.jsonl")
    generations = _File("generations.jsonl")


class RunLayout:
    """Every path of one run directory. ``RunLayout.of(cfg)`` is ``[run] root / [run] name``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.contamination = ContaminationDir(self.root, "contamination")
        self.identity = IdentityDir(self.root, "identity")
        self.activations = ActivationsDir(self.root, "activations")
        self.probes = ProbesDir(self.root, "probes")
        self.evals = EvalsDir(self.root, "evals")
        self.ablation = AblationDir(self.root, "ablation")
        self.steering = SteeringDir(self.root, "steering")
        self.profile = ProfileDir(self.root, "profile")
        self.patching = PatchingDir(self.root, "patching")
        self.prevention = PreventionDir(self.root, "prevention")
        self.report = ReportDir(self.root, "report")
        self.judge = JudgeDir(self.root, "judge")
        self.tunes = Folder(self.root, "tune")  # every tune's folder is under it

    def folders(self) -> list[Folder]:
        """The stage folders in stage order (not the tunes), then ``judge/``."""
        return [self.contamination, self.identity, self.activations, self.probes, self.evals, self.ablation,
                self.steering, self.profile, self.patching, self.prevention, self.report, self.judge]

    @classmethod
    def of(cls, cfg: dict[str, Any]) -> RunLayout:
        return cls(Path(cfg["run"]["root"]) / cfg["run"]["name"])

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def tune(self, name: str, seed: int | None = None) -> Folder:
        """A tune's folder: ``tune/<name>``, or ``tune/<name>/seed<k>`` in a run of several seeds (seed given)."""
        return Folder(self.root, f"{self.tunes.name}/{name}" + (f"/seed{seed}" if seed is not None else ""))

    def distill_cache(self, seed: int) -> Path:
        """The distilled instruction mix of ``[run] seed`` beside the (single-seed) tunes."""
        from tuning.recipe import distill_cache_name

        return self.tunes / distill_cache_name(seed)

    def stage_name(self, path: str | os.PathLike) -> str:
        """The stage that owns ``path`` (a folder under the run), e.g. ``tune/conscious/seed1``."""
        return Path(path).relative_to(self.root).as_posix()

    def records(self) -> list[Path]:
        """Every stage's ``stage.json`` under the run, sorted."""
        return sorted(self.root.rglob(RECORD))
